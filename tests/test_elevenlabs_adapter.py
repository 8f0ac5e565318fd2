"""The `elevenlabs` backend driving a second Morpheus that serves the ElevenLabs face.

The upstream Morpheus runs the synthetic engine (60 ms per character, exact word timings), so
what comes back through the adapter can be checked against what the engine made.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from aiohttp import web

from adapters.base import TTSInput
from adapters.elevenlabs.adapter import ElevenLabsAdapter, TailHold
from adapters.errors import BackendTimeout, BackendUnavailable, BadCredentials, MalformedAudio
from server.app_keys import ORCHESTRATOR
from server.config import Settings
from tests.audio_check import pcm_stats
from tests.ports import refused_port

MS_PER_CHAR = 60.0
TEXT = "Hello there, my friend. How are you today?"


def elevenlabs(url: str, **settings: object) -> ElevenLabsAdapter:
    """The backend built as the server builds it, from settings."""
    return ElevenLabsAdapter.from_options(
        Settings(elevenlabs_base_url=url, **settings).model_dump())


async def front_for(serve, upstream_url: str, **extra):
    return await serve(tts_backend="elevenlabs", backends="elevenlabs,synthetic,espeak",
                       elevenlabs_base_url=upstream_url, **extra)


def test_not_in_the_default_backends_and_not_configured_by_default() -> None:
    assert "elevenlabs" not in Settings().enabled_backends
    adapter = ElevenLabsAdapter.from_options(Settings().model_dump())
    assert adapter.pooled.pool is None  # the public API without a key: never touched
    health = asyncio.run(adapter.health())
    assert not health.ready and "not configured" in (health.reason or "")
    with pytest.raises(BackendUnavailable, match="not configured"):
        asyncio.run(adapter.warmup())


async def test_http_segments_through_the_adapter(serve) -> None:
    up = await serve(tts_backend="synthetic")
    front = await front_for(serve, up.url)
    async with front.http.get(f"{front.url}/v1/audio/voices") as r:
        assert (await r.json())["voices"] == ["sine", "buzz"]  # listed by the upstream
    async with front.http.post(f"{front.url}/v1/audio/speech",
                               json={"input": TEXT, "response_format": "pcm"}) as r:
        assert r.status == 200 and r.headers["X-Backend"] == "elevenlabs"
        pcm = await r.read()
    stats = pcm_stats(pcm)
    assert stats.duration_s == pytest.approx(len(TEXT) * MS_PER_CHAR / 1000, abs=0.15)
    assert stats.rms_dbfs > -30


async def test_websocket_stream_uses_one_upstream_socket_with_exact_words(serve) -> None:
    up = await serve(tts_backend="synthetic")
    front = await front_for(serve, up.url)
    async with front.http.ws_connect(f"{front.url.replace('http', 'ws')}/v1/audio/speech/ws") as ws:
        await ws.receive_json()  # session.created
        for piece in ("Hello there, ", "my friend. ", "How are you today? "):
            await ws.send_json({"type": "input_text.append", "text": piece})
        await ws.send_json({"type": "input_text.done"})
        words, audio = [], b""
        while True:
            msg = await ws.receive(timeout=20)
            if msg.type.name == "BINARY":
                audio += msg.data
                continue
            ev = json.loads(msg.data)
            if ev["type"] == "response.word":
                words.append(ev)
            assert ev["type"] != "error", ev
            if ev["type"] == "response.done":
                break
    assert [w["text"] for w in words] == TEXT.split()
    assert all(w["exact"] for w in words)
    # Within a segment the upstream's own timings come through to the millisecond.
    assert words[1]["start_ms"] - words[0]["start_ms"] == pytest.approx(6 * MS_PER_CHAR, abs=1)
    assert words[1]["end_ms"] - words[1]["start_ms"] == pytest.approx(6 * MS_PER_CHAR, abs=1)
    assert pcm_stats(audio).duration_s == pytest.approx(len(TEXT) * MS_PER_CHAR / 1000, abs=0.2)
    for _ in range(50):  # the upstream socket closed with the stream
        if not up.app[ORCHESTRATOR].streams:
            break
        await asyncio.sleep(0.1)
    assert not up.app[ORCHESTRATOR].streams


async def test_api_key_goes_upstream_and_is_never_logged(serve, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    up = await serve(tts_backend="synthetic", api_key="upstream-secret")
    front = await front_for(serve, up.url, elevenlabs_api_key="upstream-secret")
    async with front.http.post(f"{front.url}/v1/audio/speech",
                               json={"input": TEXT, "response_format": "pcm"}) as r:
        assert r.status == 200 and len(await r.read()) > 48000
    async with front.http.get(f"{front.url}/config") as r:
        assert (await r.json())["elevenlabs_api_key"] == "***"
    wrong = await front_for(serve, up.url, elevenlabs_api_key="wrong-secret",
                            fallback_backend="")
    async with wrong.http.post(f"{wrong.url}/v1/audio/speech",
                               json={"input": TEXT, "response_format": "pcm"}) as r:
        assert r.status == 503
        assert "credentials" in (await r.json())["error"]["message"]
    assert "upstream-secret" not in caplog.text and "wrong-secret" not in caplog.text


async def test_cancel_closes_the_upstream_request(serve) -> None:
    up = await serve(tts_backend="synthetic", synthetic_rtf=1.0)
    front = await front_for(serve, up.url)
    async with front.http.post(f"{front.url}/v1/audio/speech",
                               json={"input": TEXT * 4, "response_format": "pcm"}) as r:
        await r.content.readany()
        assert up.app[ORCHESTRATOR].streams  # the upstream is speaking for us
    for _ in range(50):
        if not up.app[ORCHESTRATOR].streams and not front.app[ORCHESTRATOR].streams:
            break
        await asyncio.sleep(0.1)
    assert not up.app[ORCHESTRATOR].streams


async def test_a_pool_skips_a_dead_upstream(serve) -> None:
    up = await serve(tts_backend="synthetic")
    dead = f"http://127.0.0.1:{refused_port()}"
    front = await front_for(serve, f"{dead},{up.url}")
    for _ in range(3):
        async with front.http.post(f"{front.url}/v1/audio/speech",
                                   json={"input": TEXT, "response_format": "pcm"}) as r:
            assert r.status == 200 and r.headers["X-Backend"] == "elevenlabs"
    async with front.http.get(f"{front.url}/adapters") as r:
        row = next(a for a in (await r.json())["adapters"] if a["name"] == "elevenlabs")
    assert {u["address"]: u["state"] for u in row["upstreams"]}[dead] != "up"


async def collect(adapter: ElevenLabsAdapter, text: str = TEXT) -> bytes:
    return b"".join([c.pcm async for c in adapter.synth_stream(TTSInput(text, voice="sine"))])


async def test_refused_upstream_is_typed() -> None:
    adapter = elevenlabs(f"http://127.0.0.1:{refused_port()}")
    try:
        with pytest.raises(BackendUnavailable):
            await collect(adapter)
        with pytest.raises(BackendUnavailable):
            await adapter.warmup()
        assert not (await adapter.health()).ready
    finally:
        await adapter.aclose()


async def small_server(handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def test_garbage_silence_and_bad_key_upstreams_are_typed() -> None:
    async def garbage(request: web.Request) -> web.StreamResponse:
        return web.Response(text="<html>not audio</html>", content_type="text/html")

    async def silent(request: web.Request) -> web.StreamResponse:
        await asyncio.Event().wait()  # until the client goes
        return web.Response(body=b"")

    async def locked(request: web.Request) -> web.StreamResponse:
        return web.json_response({"detail": {"status": "invalid_api_key"}}, status=401)

    for handler, error in ((garbage, MalformedAudio), (silent, BackendTimeout),
                           (locked, BadCredentials)):
        runner, url = await small_server(handler)
        adapter = elevenlabs(url, upstream_connect_timeout_s=2, upstream_read_timeout_s=0.5)
        try:
            with pytest.raises(error):
                await collect(adapter)
        finally:
            await adapter.aclose()
            await runner.cleanup()


async def test_session_errors_are_typed() -> None:
    async def garbage(request: web.Request) -> web.StreamResponse:
        return web.Response(text="<html>not a socket</html>", content_type="text/html")

    async def locked(request: web.Request) -> web.StreamResponse:
        return web.json_response({"detail": {"status": "invalid_api_key"}}, status=401)

    async def mute(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:  # takes the text, never answers
            pass
        return ws

    refused = f"http://127.0.0.1:{refused_port()}"
    adapter = elevenlabs(refused)
    session = adapter.open_session()
    with pytest.raises(BackendUnavailable):
        await anext(session.synth_stream(TTSInput(TEXT, voice="sine")))
    await session.aclose()
    await adapter.aclose()
    for handler, error in ((garbage, MalformedAudio), (locked, BadCredentials),
                           (mute, BackendTimeout)):
        runner, url = await small_server(handler)
        adapter = elevenlabs(url, upstream_connect_timeout_s=2, upstream_read_timeout_s=0.5)
        session = adapter.open_session()
        try:
            with pytest.raises(error):
                await anext(session.synth_stream(TTSInput(TEXT, voice="sine")))
        finally:
            await session.aclose()
            await adapter.aclose()
            await runner.cleanup()


def test_tail_hold_keeps_50_ms_and_whole_samples() -> None:
    hold = TailHold()
    assert hold.push(b"\x01" * 1000) == b""  # below 20 ms + the tail: wait
    out = hold.push(b"\x02" * 5001)
    assert len(out) % 2 == 0 and len(out) == 6001 - 2400 - 1
    assert len(hold.finish()) == 2400  # the odd byte is dropped at the end
