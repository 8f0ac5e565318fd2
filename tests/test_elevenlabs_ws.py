"""ElevenLabs' WebSockets on Morpheus: stream-input and multi-stream-input, driven the way the
SDK helper, pipecat and LiveKit drive them, with a plain aiohttp client on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import aiohttp
import pytest

from server.app_keys import ORCHESTRATOR
from tests.audio_check import decode, pcm_stats

MS_PER_CHAR = 60.0
LONG = " ".join(f"Sentence {i} of a long answer that keeps going for a while." for i in range(8))


def ws_url(srv, kind: str = "stream-input", voice: str = "sine", **query: str) -> str:
    query.setdefault("output_format", "pcm_24000")
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return f"{srv.url.replace('http', 'ws')}/v1/text-to-speech/{voice}/{kind}?{q}"


async def messages(ws: aiohttp.ClientWebSocketResponse, timeout: float = 20) -> list[dict]:
    """Every JSON message until the server closes."""
    out = []
    while True:
        msg = await ws.receive(timeout=timeout)
        if msg.type != aiohttp.WSMsgType.TEXT:
            return out
        out.append(json.loads(msg.data))


def audio_of(msgs: list[dict], context: str | None = None) -> bytes:
    return b"".join(base64.b64decode(m["audio"]) for m in msgs
                    if m.get("audio") and m.get("contextId") == context)


def absolute_chars(msgs: list[dict], context: str | None = None) -> list[tuple[str, int, int]]:
    """(char, start, end) in ms from the start, adding up each message's relative times the
    way pipecat does."""
    out = []
    cursor = 0
    for m in msgs:
        a = m.get("alignment")
        if not a or m.get("contextId") != context:
            continue
        for ch, s, d in zip(a["chars"], a["charStartTimesMs"], a["charDurationsMs"], strict=True):
            out.append((ch, cursor + s, cursor + s + d))
        cursor += a["charStartTimesMs"][-1] + a["charDurationsMs"][-1]
    return out


async def test_stream_input_pieces_alignment_and_final(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    pieces = ["Hello ", "there, ", "my friend. ", "How are ", "you ", "today? "]
    async with srv.http.ws_connect(ws_url(srv)) as ws:
        await ws.send_json({"text": " ", "voice_settings": None,
                            "generation_config": {"chunk_length_schedule": [50]}})
        for piece in pieces:
            await ws.send_json({"text": piece, "try_trigger_generation": True})
        await ws.send_json({"text": ""})
        msgs = await messages(ws)
        assert ws.close_code == 1000
    assert msgs[-1] == {"isFinal": True}
    assert all(m["isFinal"] is False for m in msgs[:-1])
    pcm = audio_of(msgs)
    text = "".join(pieces)
    assert pcm_stats(pcm).duration_s == pytest.approx(len(text.strip()) * MS_PER_CHAR / 1000,
                                                      abs=0.1)
    chars = absolute_chars(msgs)
    assert "".join(c for c, _, _ in chars) == text
    assert all(b[1] >= a[1] for a, b in zip(chars, chars[1:], strict=False))
    assert chars[0][1] == 0 and chars[6][1] == 360  # "there," starts 6 characters in
    assert chars[-1][2] == pytest.approx(pcm_stats(pcm).duration_s * 1000, abs=2)


async def test_flush_speaks_what_is_buffered_before_the_end(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    async with srv.http.ws_connect(ws_url(srv)) as ws:
        await ws.send_json({"text": " "})
        await ws.send_json({"text": "no punctuation here at all "})
        await ws.send_json({"text": "", "flush": True})  # a flush, not the end
        first = await ws.receive_json(timeout=10)  # audio before the input ends
        assert first.get("audio")
        await ws.send_json({"text": ""})
        rest = await messages(ws)
    assert rest[-1] == {"isFinal": True}


async def test_stream_input_mp3_and_the_sdk_key_spelling(serve) -> None:
    srv = await serve(tts_backend="synthetic", api_key="k1")
    async with srv.http.ws_connect(ws_url(srv, output_format="mp3_44100_128")) as ws:
        await ws.send_json({"text": " ", "xi-api-key": "k1"})
        await ws.send_json({"text": "An mp3 stream over the socket. "})
        await ws.send_json({"text": ""})
        msgs = await messages(ws)
    d = decode(audio_of(msgs))
    assert d.codec.startswith("mp3") and d.sample_rate_hz == 44100 and d.rms_dbfs > -30


@pytest.mark.parametrize("kind", ["stream-input", "multi-stream-input"])
async def test_api_key_on_both_sockets(serve, kind: str) -> None:
    srv = await serve(tts_backend="synthetic", api_key="k1")
    ctx: dict[str, Any] = {"context_id": "c"} if kind == "multi-stream-input" else {}

    async def attempt(headers: dict[str, str], first: dict[str, Any]) -> tuple[list[dict], int]:
        async with srv.http.ws_connect(ws_url(srv, kind), headers=headers) as ws:
            got: list[dict] = []
            try:
                await ws.send_json({"text": " ", **ctx, **first})
                await ws.send_json({"text": "Hi there. ", **ctx, "flush": True})
                if ctx:  # the end of a turn: a bare flush, then close_context
                    await ws.send_json({**ctx, "flush": True})
                await ws.send_json({**ctx, "close_context": True} if ctx else {"text": ""})
                if ctx:  # wait for the context to finish, then close the socket
                    while not (got and (got[-1].get("isFinal") or got[-1].get("error"))):
                        got.append(await ws.receive_json(timeout=10))
                    await ws.send_json({"close_socket": True})
            except (ConnectionError, TypeError):
                pass  # closed on us already (receive_json of a close frame is a TypeError)
            return got + await messages(ws), ws.close_code or 0

    for headers, first in (({}, {}), ({}, {"xi_api_key": "bad"}),
                           ({"xi-api-key": "bad"}, {"xi_api_key": "k1"})):
        msgs, code = await attempt(headers, first)
        assert code == 1008, (headers, first, msgs)
        assert msgs[-1]["error"] == "invalid_api_key" and msgs[-1]["message"]
        assert not any(m.get("audio") for m in msgs)
    for headers, first in (({"xi-api-key": "k1"}, {}), ({}, {"xi_api_key": "k1"}),
                           ({}, {"xi-api-key": "k1"}), ({}, {"authorization": "Bearer k1"})):
        msgs, code = await attempt(headers, first)
        assert code == 1000, (headers, first, msgs)
        assert audio_of(msgs, ctx.get("context_id")), (headers, first)
    async with srv.http.ws_connect(ws_url(srv, kind, api_key="k1")) as ws:  # query key
        await ws.send_json({"text": " ", **ctx})
        await ws.send_json({"text": "Query key. ", **ctx, "flush": True})
        if ctx:
            await ws.send_json({**ctx, "flush": True})
        await ws.send_json({**ctx, "close_context": True} if ctx else {"text": ""})
        first_msg = await ws.receive_json(timeout=10)
        assert first_msg.get("audio")


async def test_multi_contexts_interleave_and_close_context_stops_only_that_one(serve) -> None:
    srv = await serve(tts_backend="synthetic", synthetic_rtf=4.0)
    orch = srv.app[ORCHESTRATOR]
    short = "Context b says a few words."
    async with srv.http.ws_connect(ws_url(srv, "multi-stream-input")) as ws:
        await ws.send_json({"text": " ", "context_id": "a", "voice_settings": {"speed": 1.0}})
        await ws.send_json({"text": LONG + " ", "context_id": "a"})
        await ws.send_json({"text": " ", "context_id": "b"})
        await ws.send_json({"text": short + " ", "context_id": "b"})
        await ws.send_json({"text": "", "context_id": "b"})  # a keep-alive, not an end
        await ws.send_json({"context_id": "b", "flush": True})
        await ws.send_json({"context_id": "b", "close_context": True})  # finishes b
        await ws.send_json({"text": "", "context_id": "b"})  # pipecat's keep-alive: harmless
        msgs: list[dict] = []
        a_audio = 0
        t_close = None
        while True:
            m = await ws.receive_json(timeout=20)
            msgs.append(m)
            if m.get("contextId") == "a" and m.get("audio"):
                a_audio += 1
                if a_audio == 2:  # a is speaking: the listener barges in on a only
                    await ws.send_json({"context_id": "a", "close_context": True})
                    t_close = time.monotonic()
            if m.get("isFinal") and m["contextId"] == "a":
                assert t_close is not None and time.monotonic() - t_close < 2.0
            if {x["contextId"] for x in msgs if x.get("isFinal")} == {"a", "b"}:
                break
        await ws.send_json({"close_socket": True})
        assert await messages(ws) == []
        assert ws.close_code == 1000
    assert not any(m.get("error") for m in msgs)
    final_a = next(i for i, m in enumerate(msgs) if m.get("isFinal") and m["contextId"] == "a")
    assert not any(m.get("contextId") == "a" and m.get("audio") for m in msgs[final_a + 1:])
    a_ms = pcm_stats(audio_of(msgs, "a")).duration_s * 1000
    assert a_ms < len(LONG) * MS_PER_CHAR / 3  # cut short: the rest was never made
    b_ms = pcm_stats(audio_of(msgs, "b")).duration_s * 1000
    assert b_ms == pytest.approx(len(short) * MS_PER_CHAR, abs=100)  # b spoke in full
    assert "".join(c for c, _, _ in absolute_chars(msgs, "b")) == short + " "
    for _ in range(50):
        if not orch.streams:
            break
        await asyncio.sleep(0.1)
    assert not orch.streams


async def test_close_socket_stops_every_context_and_says_final(serve) -> None:
    srv = await serve(tts_backend="synthetic", synthetic_rtf=2.0)
    async with srv.http.ws_connect(ws_url(srv, "multi-stream-input")) as ws:
        for cid in ("x", "y"):
            await ws.send_json({"text": " ", "context_id": cid})
            await ws.send_json({"text": LONG + " ", "context_id": cid, "flush": True})
        await ws.receive_json(timeout=10)
        await ws.send_json({"close_socket": True})
        msgs = await messages(ws)
        assert ws.close_code == 1000
    finals = [m["contextId"] for m in msgs if m.get("isFinal")]
    assert sorted(finals) == ["x", "y"]
    assert not srv.app[ORCHESTRATOR].streams


async def test_client_gone_stops_its_streams(serve) -> None:
    srv = await serve(tts_backend="synthetic", synthetic_rtf=1.0)
    orch = srv.app[ORCHESTRATOR]
    ws = await srv.http.ws_connect(ws_url(srv, "multi-stream-input"))
    await ws.send_json({"text": " ", "context_id": "a"})
    await ws.send_json({"text": LONG + " ", "context_id": "a", "flush": True})
    assert (await ws.receive_json(timeout=10)).get("audio")
    assert orch.streams
    await ws.close()
    for _ in range(50):
        if not orch.streams:
            break
        await asyncio.sleep(0.1)
    assert not orch.streams


async def test_inactivity_timeout_finishes_and_closes(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    async with srv.http.ws_connect(ws_url(srv, inactivity_timeout="1")) as ws:
        await ws.send_json({"text": " "})
        await ws.send_json({"text": "Left hanging without an end. "})
        msgs = await messages(ws, timeout=10)
        assert ws.close_code == 1000
    assert msgs[-1] == {"isFinal": True} and audio_of(msgs)


@pytest.mark.parametrize("kind", ["stream-input", "multi-stream-input"])
async def test_bad_messages_get_an_error_naming_the_field(serve, kind: str) -> None:
    srv = await serve(tts_backend="synthetic")
    for bad, field in (("not json", None), ("[1, 2]", None), ('{"text": 5}', "text"),
                       ('{"text": "hi", "flush": "yes"}', "flush"),
                       ('{"text": " ", "voice_settings": {"speed": 99}}', "voice_settings.speed"),
                       ('{"text": " ", "generation_config": {"chunk_length_schedule": "x"}}',
                        "generation_config.chunk_length_schedule")):
        async with srv.http.ws_connect(ws_url(srv, kind)) as ws:
            await ws.send_str(bad)
            msgs = await messages(ws)
            assert ws.close_code == 1008, bad
        assert msgs[-1]["error"] == "invalid_message" and msgs[-1]["message"]
        assert msgs[-1].get("field") == field, (bad, msgs[-1])
    async with srv.http.ws_connect(ws_url(srv, kind)) as ws:
        await ws.send_bytes(b"\x00\x01")
        await messages(ws)
        assert ws.close_code == 1003


async def test_unspeakable_text_is_a_clear_error(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    async with srv.http.ws_connect(ws_url(srv)) as ws:
        await ws.send_json({"text": " "})
        await ws.send_json({"text": "\u0000 ... \u0001 "})
        await ws.send_json({"text": ""})
        msgs = await messages(ws)
        assert ws.close_code == 1008
    errors = [m for m in msgs if m.get("error")]
    assert errors and errors[0]["field"] == "text"
    assert msgs[-1] == {"isFinal": True}


@pytest.mark.parametrize("query, field", [({"output_format": "bogus"}, "output_format"),
                                          ({"inactivity_timeout": "0"}, "inactivity_timeout"),
                                          ({"optimize_streaming_latency": "x"},
                                           "optimize_streaming_latency")])
async def test_bad_query_is_422_before_the_upgrade(serve, query: dict, field: str) -> None:
    srv = await serve(tts_backend="synthetic")
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await srv.http.ws_connect(ws_url(srv, **query))
    assert e.value.status == 422
    async with srv.http.get(ws_url(srv, **query).replace("ws://", "http://"),
                            headers=UPGRADE) as r:  # the same handshake, body readable
        assert r.status == 422
        assert (await r.json())["detail"][0]["loc"] == ["query", field]


UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode()}


@pytest.mark.parametrize("kind", ["stream-input", "multi-stream-input"])
async def test_a_plain_request_is_told_to_upgrade_and_needs_the_key(serve, kind: str) -> None:
    srv = await serve(tts_backend="synthetic", api_key="k1")
    url = ws_url(srv, kind).replace("ws://", "http://")
    async with srv.http.get(url) as r:  # no upgrade, so no first message can bring the key
        assert r.status == 401
    async with srv.http.get(url, headers={"xi-api-key": "k1"}) as r:
        assert r.status == 426 and (await r.json())["detail"]["status"] == "upgrade_required"


async def test_empty_utterance_just_ends(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    async with srv.http.ws_connect(ws_url(srv)) as ws:
        await ws.send_json({"text": " "})
        await ws.send_json({"text": ""})
        assert await messages(ws) == [{"isFinal": True}]
        assert ws.close_code == 1000


async def test_one_contexts_trouble_leaves_the_socket_and_the_others_alone(serve) -> None:
    srv = await serve(tts_backend="synthetic", synthetic_rtf=1.0, max_input_chars=200)
    async with srv.http.ws_connect(ws_url(srv, "multi-stream-input")) as ws:
        for i in range(8):  # every context open, none finished
            await ws.send_json({"text": " ", "context_id": f"c{i}"})
        await ws.send_json({"text": " ", "context_id": "one-too-many"})
        err = await ws.receive_json(timeout=10)
        assert err["error"] == "invalid_request" and err["contextId"] == "one-too-many"
        assert err["field"] == "context_id"
        await ws.send_json({"text": "x" * 300, "context_id": "c1"})  # over MAX_INPUT_CHARS
        got = [await ws.receive_json(timeout=10) for _ in range(2)]
        assert {"isFinal": True, "contextId": "c1"} in got
        assert any(m.get("error") and m.get("field") == "text" for m in got)
        await ws.send_json({"text": "Still speaking. ", "context_id": "c0", "flush": True})
        audio = await ws.receive_json(timeout=10)
        assert audio["contextId"] == "c0" and audio["audio"]
        await ws.send_json({"close_socket": True})
        await messages(ws)
        assert ws.close_code == 1000


async def test_text_after_the_end_of_input_is_not_spoken(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    async with srv.http.ws_connect(ws_url(srv)) as ws:
        await ws.send_json({"text": " "})
        await ws.send_json({"text": "Hello there. "})
        await ws.send_json({"text": ""})
        await ws.send_json({"text": "Too late to be said. "})
        msgs = await messages(ws)
        assert ws.close_code == 1000
    assert "".join(c for c, _, _ in absolute_chars(msgs)) == "Hello there. "
    assert msgs[-1] == {"isFinal": True} and not any(m.get("error") for m in msgs)


async def test_sockets_share_the_websocket_cap(serve) -> None:
    srv = await serve(tts_backend="synthetic", ws_max_connections=1)
    async with srv.http.ws_connect(ws_url(srv, "multi-stream-input")):
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await srv.http.ws_connect(ws_url(srv))
        assert e.value.status == 503
        with pytest.raises(aiohttp.WSServerHandshakeError):  # the native socket counts too
            await srv.http.ws_connect(f"{srv.url.replace('http', 'ws')}/v1/audio/speech/ws")
    async with srv.http.ws_connect(ws_url(srv)) as ws:  # freed when the first one closed
        await ws.send_json({"text": " "})
        await ws.send_json({"text": ""})
        assert await messages(ws) == [{"isFinal": True}]
