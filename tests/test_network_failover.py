"""Network backends under failure and change, end to end through Morpheus on 127.0.0.1:
requests spread over an upstream list; an upstream killed mid-stream (alone: the fallback
speaks from the first unheard word, degraded; one of two: the same backend finishes, not
degraded); a backend added, switched to and removed through POST /config mid-stream."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from server.app_keys import BACKENDS, ORCHESTRATOR
from tests.audio_check import pcm_stats
from tests.coqui_server import CoquiTestServer
from tests.upstream_server import UpstreamTestServer
from tests.waits import wait_until
from tests.xtts_server import XttsTestServer

TEXT = ("Alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
        "november oscar papa quebec romeo sierra tango.")


async def sse_speech(srv: Any, body: dict[str, Any]) -> tuple[dict[str, str], bytes, dict]:
    """POST /v1/audio/speech as SSE; (headers, pcm, the final `speech.audio.done` event)."""
    pcm = bytearray()
    done: dict[str, Any] = {}
    async with srv.http.post(srv.url + "/v1/audio/speech", json={
            **body, "response_format": "pcm", "stream_format": "sse"}) as r:
        assert r.status == 200, await r.text()
        headers = dict(r.headers)
        async for line in r.content:
            if not line.startswith(b"data: "):
                continue
            event = json.loads(line[6:])
            if event["type"] == "speech.audio.delta":
                pcm += base64.b64decode(event["audio"])
            elif event["type"] == "speech.audio.done":
                done = event
            elif event["type"] != "speech.word":  # word timings are expected; anything else not
                raise AssertionError(f"stream failed: {event}")
    return headers, bytes(pcm), done


async def kill_after(servers: list[UpstreamTestServer], chunks: int) -> UpstreamTestServer:
    """Kill whichever server first sends `chunks` audio chunks; return it."""
    while True:
        for s in servers:
            if s.chunks_sent >= chunks:
                await s.kill()
                return s
        await asyncio.sleep(0.005)


def streamed_texts(srv: XttsTestServer) -> list[str]:
    return [r.body["text"] for r in srv.audio_requests("/tts_stream")]


async def test_requests_spread_over_every_upstream_in_the_list(serve) -> None:
    async with XttsTestServer() as a, XttsTestServer() as b:
        srv = await serve(tts_backend="xtts", backends="xtts,espeak",
                          xtts_url=f"{a.url}, {b.url}", parallel_streams=8,
                          stall_timeout_ms=30_000)  # four Piper runs at once on a busy box
        results = await asyncio.gather(*(
            sse_speech(srv, {"input": f"Request number {i} is here."}) for i in range(4)))
        async with srv.http.get(srv.url + "/adapters") as r:
            row = next(x for x in (await r.json())["adapters"] if x["name"] == "xtts")
    assert all(h["X-Backend"] == "xtts" and not done["degraded"] for h, _, done in results)
    assert len(a.audio_requests("/tts_stream")) >= 1 and len(b.audio_requests("/tts_stream")) >= 1
    assert sum(u["streams"] for u in row["upstreams"]) == 4


async def test_lone_upstream_killed_mid_stream_falls_back_from_the_first_unheard_word(
        serve) -> None:
    async with XttsTestServer(rtf=2.0, chunk_ms=100) as xtts:
        srv = await serve(tts_backend="xtts", backends="xtts,synthetic",
                          fallback_backend="synthetic", xtts_url=xtts.url)
        killer = asyncio.create_task(kill_after([xtts], 4))
        headers, pcm, done = await sse_speech(srv, {"input": TEXT})
        await killer
        fallback = srv.app[BACKENDS].instance("synthetic")
    assert headers["X-Backend"] == "xtts" and done["degraded"] is True
    segment = streamed_texts(xtts)[0]
    resumed = fallback.texts[0]  # type: ignore[attr-defined]
    # The fallback starts inside the segment XTTS was speaking, at a word, after what was
    # heard (4 chunks = 400 ms: a few words), not from the segment's start.
    assert segment.endswith(resumed) and 0 < len(resumed) < len(segment)
    assert segment[len(segment) - len(resumed) - 1] == " "
    assert pcm_stats(pcm).duration_s > 1.0


async def test_one_of_two_upstreams_killed_mid_stream_finishes_on_the_other(serve) -> None:
    async with XttsTestServer(rtf=2.0, chunk_ms=100) as a, \
            XttsTestServer(rtf=2.0, chunk_ms=100) as b:
        srv = await serve(tts_backend="xtts", backends="xtts,synthetic",
                          fallback_backend="synthetic", xtts_url=f"{a.url},{b.url}")
        killer = asyncio.create_task(kill_after([a, b], 4))
        headers, pcm, done = await sse_speech(srv, {"input": TEXT})
        killed = await killer
        fallback = srv.app[BACKENDS].instance("synthetic")
    survivor = b if killed is a else a
    assert headers["X-Backend"] == "xtts" and done["degraded"] is False
    assert fallback.texts == []  # type: ignore[attr-defined]
    lost, resumed = streamed_texts(killed)[0], streamed_texts(survivor)[0]
    assert lost.endswith(resumed) and 0 < len(resumed) < len(lost)
    stats = pcm_stats(pcm)
    assert stats.duration_s > 3.0 and stats.rms_dbfs > -35


async def test_backend_added_switched_to_and_removed_while_a_stream_plays(serve) -> None:
    async with CoquiTestServer() as coqui:
        srv = await serve(tts_backend="synthetic", backends="synthetic,espeak",
                          synthetic_rtf=1.0)
        long_text = "A stream that keeps playing while the configuration changes. " * 4
        playing = asyncio.create_task(sse_speech(srv, {"input": long_text}))
        orch = srv.app[ORCHESTRATOR]
        await wait_until(lambda: any(st.audio_ms > 0 for st in orch.streams.values()))

        async def config(update: dict[str, Any]) -> int:
            async with srv.http.post(srv.url + "/config", json=update) as r:
                return r.status

        assert await config({"backends": "synthetic,espeak,coqui", "coqui_url": coqui.url}) == 200
        assert await config({"tts_backend": "coqui"}) == 200
        headers, pcm, done = await sse_speech(srv, {"input": "Now the new backend speaks."})
        assert headers["X-Backend"] == "coqui" and pcm_stats(pcm).rms_dbfs > -35
        assert not playing.done()
        assert await config({"tts_backend": "synthetic", "backends": "synthetic,espeak"}) == 200
        async with srv.http.post(srv.url + "/v1/audio/speech", json={
                "input": "Gone again.", "backend": "coqui"}) as r:
            assert r.status == 400 and "not enabled" in (await r.json())["error"]["message"]
        headers, pcm, done = await playing
    assert headers["X-Backend"] == "synthetic" and done["degraded"] is False
    # the synthetic engine speaks 60 ms per character: nothing lost, nothing added
    assert pcm_stats(pcm).duration_s == pytest.approx(len(long_text.strip()) * 0.060, rel=0.1)

