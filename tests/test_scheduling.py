"""Engine time under load, on looptime's virtual clock: newcomers are never starved by streams
that already play, however far behind real time those are."""

from __future__ import annotations

import asyncio

import pytest

from adapters.synthetic import SyntheticAdapter, SyntheticKnobs
from server.core.listener import WallClockObserver
from server.core.stream import StreamSpec
from tests.sim import make_orchestrator, narration

pytestmark = pytest.mark.looptime


async def http_stream(orch, text: str) -> tuple[float, float]:  # noqa: ANN001
    """A fast HTTP reader: (time to first audio, time to the end), in loop seconds."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    first = None
    stream = await orch.open(StreamSpec(transport="http"))
    stream.push_text(text)
    stream.end_input()
    try:
        async for _ in stream:
            if first is None:
                first = loop.time() - t0
    finally:
        await stream.aclose()
    assert first is not None
    return first, loop.time() - t0


async def test_newcomers_start_promptly_even_when_every_stream_runs_behind() -> None:
    # Like Piper on two cores: two segments at a time, 3x real time per slot, so eight
    # streams together get 0.75x each: all of them fall behind real time.
    engine = SyntheticAdapter(SyntheticKnobs(rtf=3.0, chunk_ms=2_000, concurrency=2))
    orch = make_orchestrator({"synthetic": engine}, parallel_streams=16, stall_timeout_ms=60_000)
    text = narration(minutes=0.5)
    early = [asyncio.create_task(http_stream(orch, text)) for _ in range(8)]
    await asyncio.sleep(20)  # long enough for every early stream to be seconds behind
    late = await asyncio.gather(*(http_stream(orch, text) for _ in range(4)))
    await asyncio.gather(*early)
    # A newcomer's first chunk (2 s of audio, 0.67 s of engine time) waits only for the
    # chunks in flight and the newcomers ahead of it, never for the early streams.
    worst_first = max(first for first, _ in late)
    assert worst_first < 5.0, worst_first


async def test_the_http_listener_model_stalls_at_zero_instead_of_going_negative() -> None:
    obs = WallClockObserver()
    assert obs.buffer_ms() == 0.0
    obs.audio_sent(500)
    await asyncio.sleep(2.0)  # 1.5 s more than it had: a player would have stalled
    assert obs.buffer_ms() == 0.0
    obs.audio_sent(300)
    await asyncio.sleep(0.1)
    assert abs(obs.buffer_ms() - 200) < 1  # playing again from where it stalled


async def test_the_http_listener_model_fills_its_buffer_before_it_plays() -> None:
    obs = WallClockObserver(start_ms=300)
    obs.audio_sent(200)
    await asyncio.sleep(0.3)
    assert abs(obs.buffer_ms() - 200) < 1  # not playing yet: 200 ms is under its 300
    obs.audio_sent(200)
    await asyncio.sleep(0.35)
    assert abs(obs.buffer_ms() - 50) < 15  # playing since it held 400
    await asyncio.sleep(0.2)
    assert obs.buffer_ms() == 0.0  # ran dry
    obs.audio_sent(250)
    await asyncio.sleep(0.1)
    assert abs(obs.buffer_ms() - 250) < 1  # filling again, as after the start


async def test_a_listener_model_waiting_to_restart_grows_urgent_instead_of_freezing() -> None:
    """A modelled player that ran dry and got less than PLAYBACK_BUFFER_MS back stands still
    (it will not play 120 ms alone): its buffer figure would stay at 120 forever and, under a
    steady load, leave the stream behind every other at the engine's gate (found by the chaos
    soak: a reply with all its audio never got its end). Its stall counts against it."""
    obs = WallClockObserver(start_ms=300)
    obs.audio_sent(400)
    await asyncio.sleep(0.5)  # played all 400: dry
    assert obs.buffer_ms() == 0.0 and obs.stalled_ms() == 0.0
    obs.audio_sent(120)  # not enough to start again
    await asyncio.sleep(1.0)
    assert abs(obs.buffer_ms() - 120) < 1  # the figure stands still ...
    assert 900 < obs.stalled_ms() < 1200  # ... but the wait is counted
    obs.audio_sent(300)  # enough: it plays again
    assert obs.stalled_ms() == 0.0


async def test_a_stalled_http_stream_gets_the_engine_before_streams_ahead_of_it() -> None:
    """Two streams wait at a one-slot gate: one whose modelled listener has been stuck for a
    second with 120 ms queued, one playing with 50 ms ahead. By the buffers alone the playing
    one would go first, every time; the stuck one goes first."""
    from server.core.pacing import Pacing
    from server.core.rate import RateConfig, RateController

    stuck = WallClockObserver(start_ms=300)
    stuck.audio_sent(400)
    await asyncio.sleep(0.5)
    stuck.audio_sent(120)
    playing = WallClockObserver(start_ms=300)
    await asyncio.sleep(1.0)
    playing.audio_sent(450)
    await asyncio.sleep(0.4)
    a = Pacing(stuck, RateController(RateConfig()))
    b = Pacing(playing, RateController(RateConfig()))
    assert b.ahead_ms() < a.ahead_ms()  # by the buffers alone b would go first ...
    assert a.urgency_ms() < b.urgency_ms()  # ... but the stuck listener is more urgent
