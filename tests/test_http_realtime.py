"""Orchestrator behaviour over real HTTP: DELETE (barge-in), 429 with Retry-After, failover."""

from __future__ import annotations

import asyncio
import json
import time

from server.app_keys import ORCHESTRATOR
from tests.audio_check import pcm_stats

LONG = "This sentence is part of a long narration that keeps going. " * 30


async def test_delete_ends_the_stream_promptly(serve):
    srv = await serve(tts_backend="synthetic", synthetic_rtf=1.0)
    async with srv.http.post(srv.url + "/v1/audio/speech",
                             json={"input": LONG, "response_format": "pcm"}) as r:
        rid = r.headers["X-Request-ID"]
        got = await r.content.read(9600)
        async with srv.http.delete(f"{srv.url}/v1/audio/speech/{rid}") as d:
            assert d.status == 200
            body = await d.json()
        t_deleted = time.perf_counter()
        rest = await r.read()
        ended_after_ms = 1000 * (time.perf_counter() - t_deleted)
    assert body["status"] == "cancelled" and body["request_id"] == rid
    assert body["delivered_ms"] > 0
    assert pcm_stats(got + rest).duration_s < 60 * 0.06  # far less than the whole text
    assert ended_after_ms < 1000, ended_after_ms  # bench/ measures the real figure (~ms)
    async with srv.http.delete(f"{srv.url}/v1/audio/speech/{rid}") as d:
        assert d.status == 404
    assert not srv.app[ORCHESTRATOR].streams


async def test_past_parallel_streams_and_queue_a_request_gets_429(serve):
    srv = await serve(tts_backend="synthetic", synthetic_rtf=1.0, parallel_streams=1,
                      queue_max=0)
    async with srv.http.post(srv.url + "/v1/audio/speech", json={"input": LONG}) as first:
        assert first.status == 200
        await first.content.read(4800)
        async with srv.http.post(srv.url + "/v1/audio/speech", json={"input": "me too"}) as r:
            assert r.status == 429
            assert int(r.headers["Retry-After"]) >= 1
            assert (await r.json())["error"]["type"] == "rate_limit"


async def test_queued_request_runs_when_a_slot_frees(serve):
    srv = await serve(tts_backend="synthetic", synthetic_rtf=5.0, parallel_streams=1,
                      queue_max=4, queue_timeout_s=10)
    orch = srv.app[ORCHESTRATOR]
    texts = [f"Request number {i} is here." for i in range(3)]  # ~1.5 s of audio, 0.3 s each
    seen: list[tuple[int, int]] = []  # (active, queued) while they run

    async def watch() -> None:
        while True:
            snap = orch.snapshot()
            seen.append((snap["active_streams"], snap["queued"]))
            await asyncio.sleep(0.002)

    async def one(t):
        async with srv.http.post(srv.url + "/v1/audio/speech", json={"input": t}) as r:
            return r.status, await r.read()

    watcher = asyncio.create_task(watch())
    try:
        results = await asyncio.gather(*(one(t) for t in texts))
    finally:
        watcher.cancel()
    assert [s for s, _ in results] == [200, 200, 200]
    assert all(pcm_stats(body[44:]).duration_s > 1.0 for _, body in results)
    assert max(active for active, _ in seen) == 1  # PARALLEL_STREAMS=1: one at a time
    assert max(queued for _, queued in seen) >= 1  # the others waited in the queue


async def test_mid_stream_stall_fails_over_and_is_reported(serve):
    # The synthetic engine stalls for good; espeak, which takes over, must not seem to (its
    # process can take a second to answer on a busy machine).
    srv = await serve(tts_backend="synthetic", synthetic_stall_after=4, fallback_backend="espeak",
                      stall_timeout_ms=2000)
    async with srv.http.post(srv.url + "/v1/audio/speech", json={
            "input": "One short sentence. " * 8, "stream_format": "sse",
            "response_format": "pcm"}) as r:
        assert r.status == 200
        events = [json.loads(line[6:]) for line in (await r.text()).splitlines()
                  if line.startswith("data: ")]
    done = events[-1]
    assert done["type"] == "speech.audio.done" and done["degraded"] is True
    async with srv.http.get(srv.url + "/metrics") as m:
        text = await m.text()
    assert 'tts_backend_failover_total{from_backend="synthetic",to_backend="espeak"} 1.0' in text
