"""The orchestrator against the synthetic engine on a virtual clock (minutes of audio in ms)."""

from __future__ import annotations

import asyncio

import pytest

from adapters.synthetic import SyntheticAdapter, SyntheticKnobs
from server.core.admission import Busy
from server.core.rate import RateConfig, RateController, RateState
from server.core.stream import StreamSpec
from tests.sim import Listener, front_text, make_orchestrator, narrate, narration

pytestmark = pytest.mark.looptime


def steady_samples(run):
    """Buffer depth after each chunk once the stream first reached STEADY (end excluded)."""
    out, seen = [], False
    for state, ms in run.buffer_after_chunk[:-3]:
        seen = seen or state == "STEADY"
        if seen:
            out.append(ms)
    return out


@pytest.mark.parametrize("rtf", [1.2, 1.5, 3.0, 10.0, 50.0])
async def test_buffer_stays_in_bounds_in_steady_state(rtf):
    adapter = SyntheticAdapter(SyntheticKnobs(rtf=rtf))
    orch = make_orchestrator({"synthetic": adapter})
    run = await narrate(orch, narration(minutes=1.0))
    samples = steady_samples(run)
    assert run.status == "completed"
    assert len(samples) > 50
    assert min(samples) >= 200, (rtf, min(samples))
    assert max(samples) <= 500 + 60, (rtf, max(samples))
    assert run.underflows == 0


@pytest.mark.parametrize("rtf", [1.5, 20.0])
async def test_five_minute_narration_has_no_underflow(rtf):
    text = narration(minutes=5.0)
    adapter = SyntheticAdapter(SyntheticKnobs(rtf=rtf))
    orch = make_orchestrator({"synthetic": adapter})
    run = await narrate(orch, text)
    assert run.status == "completed"
    assert run.audio_ms > 270_000  # 5 min of text less 50 ms per seam
    assert run.underflows == 0
    assert run.listener.starved_ms == 0
    # nothing lost, nothing repeated: the spoken segments are exactly the text
    assert " ".join(s.text for s in run.segments) == front_text(text)


async def test_streamed_text_deltas_like_an_llm():
    text = narration(minutes=0.5)
    adapter = SyntheticAdapter(SyntheticKnobs(rtf=5.0))
    orch = make_orchestrator({"synthetic": adapter})
    run = await narrate(orch, text, chunked_input=7)
    assert " ".join(s.text for s in run.segments) == front_text(text)
    assert run.status == "completed"


async def test_slower_than_real_time_shrinks_and_flags_underflow_without_hanging():
    adapter = SyntheticAdapter(SyntheticKnobs(rtf=0.7))
    orch = make_orchestrator({"synthetic": adapter})
    run = await asyncio.wait_for(narrate(orch, narration(minutes=0.5)), timeout=3600)
    assert run.status == "completed"
    assert run.underflows > 0
    assert "UNDERFLOW" in run.states
    assert min(run.chunk_sizes) < max(run.chunk_sizes)  # it shrank
    assert min(run.chunk_sizes) >= 16  # but never below the floor


async def test_stall_retries_then_fails_over_with_nothing_lost_or_repeated():
    # One chunk per segment (chunk_ms larger than any segment), so a stall hits a segment
    # before any of its audio was delivered.
    primary = SyntheticAdapter(SyntheticKnobs(rtf=50.0, chunk_ms=60_000, stall_after=3))
    backup = SyntheticAdapter(SyntheticKnobs(rtf=50.0, chunk_ms=60_000))
    backup.name = "backup"
    orch = make_orchestrator({"synthetic": primary, "backup": backup},
                             fallback_backend="backup", stall_timeout_ms=1500)
    text = narration(minutes=0.5)
    run = await narrate(orch, text)
    assert run.status == "completed"
    assert len(run.degraded) == 1 and run.degraded[0].to_backend == "backup"
    said = [s.text for s in run.segments]
    assert " ".join(said) == front_text(text)  # in order, none skipped
    # nothing repeated at the audio level either: the stalled attempt delivered nothing, so the
    # stream is exactly one take per segment (a segment is at least chunk_ms / 2 of audio, less
    # a 50 ms seam)
    one_take_ms = [max(30_000, len(t) * 60) - 50 for t in said]
    assert [s.audio_ms for s in run.segments] == pytest.approx(one_take_ms, abs=1)
    assert run.audio_ms == pytest.approx(sum(one_take_ms), abs=60)
    # the primary was asked for the stalled segment twice (once retried smaller), the backup
    # took over from exactly that segment
    assert primary.texts[3] == primary.texts[4] == backup.texts[0] == said[3]
    assert backup.texts == said[3:]
    assert [s.backend for s in run.segments] == ["synthetic"] * 3 + ["backup"] * (len(said) - 3)
    assert orch.totals["failovers"] == 1


async def test_engine_errors_fail_over_too():
    primary = SyntheticAdapter(SyntheticKnobs(fail_times=100))
    backup = SyntheticAdapter(SyntheticKnobs())
    backup.name = "backup"
    orch = make_orchestrator({"synthetic": primary, "backup": backup}, fallback_backend="backup")
    run = await narrate(orch, "First sentence here. Second sentence there.")
    assert run.status == "completed" and run.degraded
    assert " ".join(backup.texts) == "First sentence here. Second sentence there."


async def test_failure_without_fallback_raises_a_typed_error():
    from adapters.errors import EngineError

    orch = make_orchestrator({"synthetic": SyntheticAdapter(SyntheticKnobs(fail_times=1))})
    with pytest.raises(EngineError):
        await narrate(orch, "This will fail.")


async def test_slow_consumer_keeps_memory_bounded():
    adapter = SyntheticAdapter(SyntheticKnobs(rtf=0.0))  # instant engine
    orch = make_orchestrator({"synthetic": adapter})
    stream = await orch.open(StreamSpec(), observer=Listener())
    stream.push_text(narration(minutes=1.0))
    stream.end_input()
    consumed = 0
    ahead = []
    async for ev in stream:
        if hasattr(ev, "pcm"):
            consumed += 1
            ahead.append(adapter.chunks_made - consumed)
            await asyncio.sleep(1.0)  # a very slow client
            if consumed == 30:
                break
    await stream.aclose()
    assert max(ahead) <= 2  # never more than 1-2 chunks made ahead of the sink


async def test_http_style_fast_reader_is_not_throttled():
    adapter = SyntheticAdapter(SyntheticKnobs(rtf=50.0))
    orch = make_orchestrator({"synthetic": adapter})
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    stream = await orch.open(StreamSpec())  # HTTP: the wall-clock model, playback unknown
    stream.push_text(narration(minutes=1.0))
    stream.end_input()
    async for _ in stream:
        pass
    await stream.aclose()
    elapsed = loop.time() - t0
    assert stream.audio_ms > 59_000
    assert elapsed < 60 / 50 * 1.5  # as fast as the engine, not real time


async def test_interrupt_flushes_within_one_chunk():
    adapter = SyntheticAdapter(SyntheticKnobs(rtf=2.0))
    orch = make_orchestrator({"synthetic": adapter})
    listener = Listener()
    stream = await orch.open(StreamSpec(), observer=listener)
    stream.push_text(narration(minutes=1.0))
    stream.end_input()
    got = 0
    async for ev in stream:
        if hasattr(ev, "pcm"):
            got += 1
            if got == 5:
                made = adapter.chunks_made
                delivered = stream.interrupt()
                break
    after = [ev async for ev in stream]
    assert after == []
    assert stream.status == "cancelled"
    assert delivered == pytest.approx(stream.audio_ms)
    await asyncio.sleep(2.0)
    assert adapter.chunks_made - made <= 1
    await stream.aclose()
    assert not orch.streams


async def test_four_concurrent_streams_share_one_engine_fairly():
    # One engine slot, 10x real time: four listeners must all keep up with no underflow.
    adapter = SyntheticAdapter(SyntheticKnobs(rtf=10.0, concurrency=1))
    orch = make_orchestrator({"synthetic": adapter}, parallel_streams=4)
    text = narration(minutes=1.0)
    runs = await asyncio.gather(*(narrate(orch, text) for _ in range(4)))
    for run in runs:
        assert run.status == "completed"
        assert run.underflows == 0
        assert run.ttft_ms is not None and run.ttft_ms < 200
    # same text; only segmentation (50 ms seams) may differ between streams
    assert max(r.audio_ms for r in runs) - min(r.audio_ms for r in runs) < 0.01 * runs[0].audio_ms


async def test_earliest_deadline_first_prefers_the_stream_near_underflow():
    # Two streams keep the one engine slot busy, so when the late arrival asks for it, another
    # stream is already waiting too: earliest deadline first lets the newcomer (no audio ahead)
    # go before it. First come, first served would make it wait one more chunk (171 ms instead
    # of 105 on this virtual clock) and run dry once. tests/test_scheduler.py tests the gate.
    adapter = SyntheticAdapter(SyntheticKnobs(rtf=3.0, concurrency=1))
    orch = make_orchestrator({"synthetic": adapter}, parallel_streams=3)
    text = narration(minutes=0.5)
    ahead = [asyncio.create_task(narrate(orch, text)) for _ in range(2)]
    await asyncio.sleep(5.0)  # both are well ahead when the third starts
    late = await narrate(orch, "A late arrival needs audio now.")
    assert late.ttft_ms is not None and late.ttft_ms < 140, late.ttft_ms
    assert late.underflows == 0
    for run in await asyncio.gather(*ahead):
        assert run.underflows == 0


async def test_past_the_limit_requests_queue_then_get_busy():
    adapter = SyntheticAdapter(SyntheticKnobs(rtf=1.0))
    orch = make_orchestrator({"synthetic": adapter}, parallel_streams=1, queue_max=1,
                             queue_timeout_s=2.0)
    s1 = await orch.open(StreamSpec())
    waiter = asyncio.create_task(orch.open(StreamSpec()))
    await asyncio.sleep(0.1)
    with pytest.raises(Busy):  # the queue (1 place) is full
        await orch.open(StreamSpec())
    with pytest.raises(Busy):  # and the queued one times out
        await waiter
    await s1.aclose()
    s2 = await orch.open(StreamSpec())  # a slot is free again
    await s2.aclose()


async def test_low_latency_starts_smallest_then_ramps():
    adapter = SyntheticAdapter(SyntheticKnobs(rtf=5.0))
    orch = make_orchestrator({"synthetic": adapter})
    run = await narrate(orch, narration(minutes=0.5), StreamSpec(low_latency=True))
    assert run.segments[0].text and len(run.segments[0].text) <= 24
    assert max(len(s.text) for s in run.segments) > 60


def test_ewma_converges_and_one_slow_chunk_does_not_swing_it():
    rc = RateController(RateConfig())
    for i in range(30):
        rc.observe(16, cost_ms=50.0 + (5 if i % 2 else -5), audio_ms=100.0)
    assert rc.cost_per_audio_ms == pytest.approx(0.5, rel=0.06)
    rc.observe(16, cost_ms=500.0, audio_ms=100.0)  # one slow chunk
    assert rc.cost_per_audio_ms < 2.0


def test_rate_machine_grows_halves_pauses_and_locks():
    rc = RateController(RateConfig(first_size=8, min_size=8, steady_size=32, max_size=64))
    assert rc.state is RateState.WARMUP and rc.chunk_size == 8
    sizes = [rc.next_size(100, started=True) for _ in range(5)]
    assert rc.state is RateState.FILL and sizes == [12, 18, 27, 32, 32]
    rc.next_size(350, started=True)
    assert rc.state is RateState.STEADY
    rc.next_size(150, started=True)
    assert rc.state is RateState.UNDERFLOW and rc.chunk_size == 16
    rc.next_size(150, started=True)
    assert rc.state is RateState.RECOVER
    assert rc.should_pause(600, playback_known=True)
    assert rc.should_pause(400, playback_known=True)  # until back at the target
    assert rc.should_pause(400, playback_known=True, lead_ms=50)
    assert not rc.should_pause(300, playback_known=True)
    assert not rc.should_pause(10_000, playback_known=False)  # never for HTTP
    assert rc.should_pause(350, playback_known=True, next_audio_ms=200)  # would land at 550
    assert not rc.should_pause(340, playback_known=True, lead_ms=40, next_audio_ms=200)
    locked = RateController(RateConfig(lock=24))
    assert {locked.next_size(b, started=True) for b in (0, 100, 300, 900)} == {24}


async def test_mid_segment_failure_resumes_at_the_unspoken_words():
    # 200 ms chunks: the stall lands inside a segment, after some of its audio was heard.
    primary = SyntheticAdapter(SyntheticKnobs(rtf=50.0, chunk_ms=200, stall_after=25))
    backup = SyntheticAdapter(SyntheticKnobs(rtf=50.0, chunk_ms=200))
    backup.name = "backup"
    orch = make_orchestrator({"synthetic": primary, "backup": backup},
                             fallback_backend="backup", stall_timeout_ms=1500)
    text = narration(minutes=0.5)
    run = await narrate(orch, text)
    assert run.status == "completed" and len(run.degraded) == 1
    stalled = [t for t in primary.texts if t.endswith(backup.texts[0])]
    assert stalled, (primary.texts[-3:], backup.texts[0])
    seg = stalled[-1]
    assert seg != backup.texts[0] and seg.endswith(" " + backup.texts[0])  # resumed mid-way
    # nothing said twice or skipped: the audio matches the text's length to within ~a word
    # (60 ms per character; each seam overlaps 50 ms, the failover adds one more seam)
    expected_ms = sum(len(s.text) for s in run.segments) * 60.0 - 50.0 * len(run.segments)
    assert abs(run.audio_ms - expected_ms) < 10 * 60.0
    assert " ".join(s.text for s in run.segments) == front_text(text)


def test_resume_point_cuts_at_whole_words():
    from server.core.recovery import resume_point

    assert resume_point("one two three four", 4 * 60, 60) == "one "
    assert resume_point("one two three four", 9 * 60, 60) == "one two "
    assert resume_point("one two three four", 0, 60) == ""
    assert resume_point("one two three four", 18 * 60, 60) == "one two three four"
