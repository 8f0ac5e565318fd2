"""IDLE_UNLOAD_S: an unused backend's models leave memory and come back on the next request."""

from __future__ import annotations

import asyncio

from server.app_keys import BACKENDS


async def speak(srv, text: str) -> int:  # noqa: ANN001
    async with srv.http.post(srv.url + "/v1/audio/speech",
                             json={"input": text, "response_format": "pcm"}) as r:
        assert r.status == 200
        return len(await r.read())


async def test_an_idle_backend_is_unloaded_and_reloads_on_demand(serve) -> None:
    srv = await serve(tts_backend="piper", idle_unload_s=0.5)
    pool = srv.app[BACKENDS]
    first = pool.instance("piper")
    assert await speak(srv, "Before the pause.") > 24_000
    assert first._loaded  # type: ignore[attr-defined]  # the voice's sessions are in memory
    for _ in range(100):
        if "piper" in pool.unloaded:
            break
        await asyncio.sleep(0.1)
    assert "piper" in pool.unloaded
    assert not first._loaded  # type: ignore[attr-defined]  # released
    async with srv.http.get(srv.url + "/readyz") as r:
        assert r.status == 200  # still ready: it loads on the next request
    assert await speak(srv, "After the pause, loaded again.") > 24_000
    assert pool.instance("piper") is not first  # a new adapter, loaded on demand
    # (whether it is unloaded again by now depends on how long the response took to read:
    # the idle time counts from the end of its stream, see below)


async def test_idle_time_counts_from_the_end_of_the_last_stream(serve) -> None:
    srv = await serve(tts_backend="synthetic", synthetic_rtf=1.0, idle_unload_s=60)
    pool = srv.app[BACKENDS]
    await speak(srv, "Hello.")
    pool._last_used["synthetic"] -= 120  # its last stream started two minutes ago ...
    assert await pool.unload_idle(60, {"synthetic"}) == []  # ... and runs still
    assert await pool.unload_idle(60, set()) == [], "unloaded as soon as its stream ended"
    pool._last_used["synthetic"] -= 61
    assert await pool.unload_idle(60, set()) == ["synthetic"]


async def test_a_backend_in_use_is_not_unloaded(serve) -> None:
    srv = await serve(tts_backend="synthetic", synthetic_rtf=1.0, idle_unload_s=0.3)
    pool = srv.app[BACKENDS]
    async with srv.http.post(srv.url + "/v1/audio/speech",
                             json={"input": "A stream that runs past the idle time. " * 3}) as r:
        await r.content.read(4800)
        await asyncio.sleep(1.5)
        assert "synthetic" not in pool.unloaded
        await r.read()


async def test_off_by_default(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    await speak(srv, "Hello.")
    assert srv.app[BACKENDS].unloaded == set()
