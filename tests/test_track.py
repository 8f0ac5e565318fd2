"""The paced outbound track: frame format, absolute-deadline pacing, bounded queue, fade-out clear."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from signaling.track import FRAME_SAMPLES, SAMPLE_RATE_HZ, TIME_BASE, PacedAudioTrack


def tone24(ms: float, freq_hz: float = 440.0, level: float = 0.5) -> bytes:
    n = int(24 * ms)
    t = np.arange(n) / 24000.0
    return (np.sin(2 * np.pi * freq_hz * t) * level * 32767).astype("<i2").tobytes()


def samples(frame) -> np.ndarray:
    return frame.to_ndarray().reshape(-1).astype(np.int32)


class FakeClock:
    """Monotonic time that only moves when the track sleeps (plus a configurable oversleep)."""

    def __init__(self, oversleep_s: float = 0.0) -> None:
        self.t = 100.0
        self.oversleep_s = oversleep_s

    def __call__(self) -> float:
        return self.t

    async def sleep(self, delay: float) -> None:
        self.t += delay + self.oversleep_s


async def test_frames_are_20ms_s16_mono_48k_with_monotonic_pts_and_silence_when_idle():
    track = PacedAudioTrack(encode=False)
    assert track.kind == "audio"
    frames = [await track.recv() for _ in range(5)]
    for i, f in enumerate(frames):
        assert f.samples == FRAME_SAMPLES == 960
        assert f.sample_rate == SAMPLE_RATE_HZ == 48000
        assert f.format.name == "s16" and f.layout.name == "mono"
        assert f.time_base == TIME_BASE
        assert f.pts == i * 960
        assert not samples(f).any()  # nothing queued: digital silence
    assert track.frames_sent == 5 and track.audio_frames_sent == 0
    track.stop()


async def test_pacing_is_against_an_absolute_deadline_so_oversleeping_never_accumulates():
    clock = FakeClock(oversleep_s=0.003)  # every sleep wakes 3 ms late
    track = PacedAudioTrack(encode=False, clock=clock, sleep=clock.sleep)
    returned: list[tuple[float, int]] = []
    track.on_frame = lambda at, pts, voiced, faded: returned.append((at, pts))
    for _ in range(500):  # 10 s of audio
        await track.recv()
    t0 = returned[0][0]
    lateness = [at - (t0 + pts / 48000) for at, pts in returned[1:]]
    # Chained sleeps would be 1.5 s late by now; the absolute deadline keeps it at 3 ms.
    assert max(lateness) == pytest.approx(0.003, abs=1e-6)
    assert returned[-1][1] == 499 * 960
    assert track.reanchors == 0


async def test_a_stall_reanchors_instead_of_bursting():
    clock = FakeClock()
    track = PacedAudioTrack(encode=False, clock=clock, sleep=clock.sleep)
    times: list[float] = []
    track.on_frame = lambda at, pts, voiced, faded: times.append(at)
    for _ in range(10):
        await track.recv()
    clock.t += 0.5  # the loop was blocked for half a second
    for _ in range(10):
        await track.recv()
    assert track.reanchors == 1
    gaps = np.diff(times[10:])
    # After the stall: one frame at once, then 20 ms apart again - no burst of 25 frames.
    assert np.allclose(gaps, 0.020, atol=1e-9), gaps


async def test_real_clock_pacing_stays_within_a_few_ms():
    track = PacedAudioTrack(encode=False)
    times: list[float] = []
    track.on_frame = lambda at, pts, voiced, faded: times.append(at)
    start = time.monotonic()
    for _ in range(51):
        await track.recv()
    elapsed = time.monotonic() - start
    # 50 intervals of 20 ms; a loaded machine may force re-anchors, and nothing else drifts
    # (but the last wake, up to the re-anchoring threshold late)
    assert elapsed == pytest.approx(1.0 + track.reanchored_ms / 1000, abs=0.025)
    # Paced: the typical gap is the frame (a late wake on a busy machine makes one gap long
    # and the next one short; bench/realtime.py measures how even they are)
    gaps_ms = np.diff(times) * 1000
    assert abs(float(np.median(gaps_ms)) - 20.0) < 5
    track.stop()


async def test_written_audio_comes_out_resampled_and_buffer_ms_is_exact():
    clock = FakeClock()
    track = PacedAudioTrack(encode=False, clock=clock, sleep=clock.sleep)
    await track.write(tone24(500))
    await track.finish()
    assert track.buffer_ms() == pytest.approx(500.0, abs=0.1)
    assert track.enqueued_ms == pytest.approx(500.0, abs=0.1)
    out = []
    for i in range(25):
        out.append(samples(await track.recv()))
        assert track.buffer_ms() == pytest.approx(500.0 - 20 * (i + 1), abs=0.1)
    pcm = np.concatenate(out)
    # A 440 Hz tone at 48 kHz: dominant frequency and level survive the resampling.
    spectrum = np.abs(np.fft.rfft(pcm[2000:22000]))
    peak_hz = np.argmax(spectrum) * 48000 / 20000
    assert abs(peak_hz - 440) < 5
    assert np.sqrt(np.mean(pcm[2000:22000] ** 2.0)) == pytest.approx(0.5 * 32767 / np.sqrt(2), rel=0.05)
    assert track.audio_frames_sent == 25
    assert track.played_ms == pytest.approx(500.0, abs=0.1)
    assert not samples(await track.recv()).any()  # then silence again


async def test_a_short_tail_is_padded_with_silence_to_a_whole_frame():
    clock = FakeClock()
    track = PacedAudioTrack(encode=False, clock=clock, sleep=clock.sleep)
    await track.write(tone24(30))
    await track.finish()
    a, b = samples(await track.recv()), samples(await track.recv())
    assert len(a) == len(b) == 960
    assert np.abs(b[: 480 - 20]).max() > 1000  # the last 10 ms of tone
    assert not b[480 + 20 :].any()  # then zeros in the same frame


async def test_clear_fades_out_within_the_next_frame_then_silence():
    clock = FakeClock()
    track = PacedAudioTrack(encode=False, clock=clock, sleep=clock.sleep)
    await track.write(np.full(24000, 20000, dtype="<i2").tobytes())  # 1 s of DC at a high level
    await track.finish()
    for _ in range(5):
        await track.recv()
    pts_before = track.frames_sent
    dropped = track.clear(fade_ms=8)
    assert dropped == pytest.approx(1000 - 100 - 8, abs=0.1)
    assert track.buffer_ms() == pytest.approx(8.0)  # only the fade is left
    faded = samples(await track.recv())
    ramp = faded[:384]
    assert ramp[0] > 19000  # starts at the level that was playing: no click
    assert np.all(np.diff(ramp) <= 0)  # falls monotonically
    assert abs(ramp[-1]) < 50  # to (about) zero
    assert not faded[384:].any()  # silence for the rest of the frame
    nxt = await track.recv()
    assert not samples(nxt).any()
    assert nxt.pts == (pts_before + 1) * 960  # pts keeps counting
    assert track.buffer_ms() == 0.0
    assert track.played_ms == pytest.approx(108.0, abs=0.1)  # 5 frames + the fade


async def test_clear_with_nothing_queued_is_harmless():
    track = PacedAudioTrack(encode=False)
    assert track.clear() == 0.0
    assert not samples(await track.recv()).any()
    track.stop()


async def test_write_waits_while_the_queue_is_full_and_clear_drops_the_waiting_rest():
    clock = FakeClock()
    track = PacedAudioTrack(encode=False, max_queue_ms=100, clock=clock, sleep=clock.sleep)
    writer = asyncio.create_task(track.write(tone24(1000)))
    await asyncio.sleep(0.01)
    assert not writer.done()  # bounded: 100 ms queued, the rest waits
    assert track.buffer_ms() == pytest.approx(100.0, abs=0.1)
    await track.recv()  # 20 ms played -> room for 20 ms more
    await asyncio.sleep(0.01)
    assert track.buffer_ms() == pytest.approx(100.0, abs=0.1)
    assert not writer.done()
    track.clear()
    await asyncio.wait_for(writer, 1)  # released, and the rest of the old audio is gone
    await track.recv()  # the fade frame
    assert track.buffer_ms() == 0.0
    assert not samples(await track.recv()).any()


async def test_stop_ends_recv_and_releases_writers():
    track = PacedAudioTrack(encode=False, max_queue_ms=40)
    writer = asyncio.create_task(track.write(tone24(500)))
    await asyncio.sleep(0.01)
    track.stop()
    await asyncio.wait_for(writer, 1)
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_recv_never_returns_none_even_when_building_a_frame_fails(monkeypatch):
    track = PacedAudioTrack(encode=False)

    def broken() -> tuple[bytes, bool, bool]:
        raise RuntimeError("boom")

    monkeypatch.setattr(track, "_next_pcm", broken)
    frame = await track.recv()
    assert frame is not None and frame.samples == 960 and not samples(frame).any()
    track.stop()


def decode_opus(packets) -> list[np.ndarray]:
    from av import CodecContext, Packet

    dec = CodecContext.create("libopus", "r")
    dec.format, dec.layout, dec.sample_rate = "s16", "mono", 48000
    out = []
    for p in packets:
        pkt = Packet(bytes(p))
        pkt.pts, pkt.time_base = p.pts, p.time_base
        out += [f.to_ndarray().reshape(-1).astype(np.int32) for f in dec.decode(pkt)]
    return out


async def test_by_default_recv_returns_opus_packets_that_decode_to_the_audio():
    from av import Packet

    clock = FakeClock()
    track = PacedAudioTrack(clock=clock, sleep=clock.sleep)
    await track.write(tone24(400, freq_hz=300))
    await track.finish()
    packets = [await track.recv() for _ in range(40)]  # 400 ms of tone, 400 ms of silence
    assert all(isinstance(p, Packet) for p in packets)
    assert [p.pts for p in packets] == [i * 960 for i in range(40)]
    assert all(p.time_base == TIME_BASE for p in packets)
    pcm = decode_opus(packets)
    assert all(len(f) == 960 for f in pcm)
    tone = np.concatenate(pcm[2:19])
    spectrum = np.abs(np.fft.rfft(tone))
    assert abs(np.argmax(spectrum) * 48000 / tone.size - 300) < 5
    assert np.sqrt(np.mean(tone**2.0)) > 0.3 * 32767 / np.sqrt(2)
    # Steady silence: the same tiny packet, not an encode per frame, and it decodes to zeros.
    tail = packets[25:]
    assert len({bytes(p) for p in tail}) == 1 and len(bytes(tail[0])) <= 3
    assert all(np.abs(f).max() < 8 for f in pcm[25:])
    track.stop()


async def test_silence_resumes_into_audio_cleanly_after_cached_silence_packets():
    clock = FakeClock()
    track = PacedAudioTrack(clock=clock, sleep=clock.sleep)
    idle = [await track.recv() for _ in range(10)]
    await track.write(tone24(200, freq_hz=500))
    await track.finish()
    speech = [await track.recv() for _ in range(10)]
    pcm = decode_opus(idle + speech)
    assert all(np.abs(f).max() < 8 for f in pcm[:10])
    assert all(np.abs(f).max() > 5000 for f in pcm[11:19])  # the tone, at level, every frame
    track.stop()


async def test_a_reply_written_while_idle_goes_out_at_once_not_at_the_next_tick():
    clock = FakeClock()
    naps: list[float] = []

    async def long_nap(delay: float) -> None:  # a nap only audio can end
        naps.append(delay)
        await asyncio.Event().wait()

    track = PacedAudioTrack(encode=False, clock=clock, sleep=long_nap)
    sent: list[tuple[float, int, bool]] = []
    track.on_frame = lambda at, pts, voiced, faded: sent.append((at, pts, voiced))
    await track.recv()  # the first frame (silence) goes at once, at t = 100.000
    waiting = asyncio.ensure_future(track.recv())  # napping until 100.020
    for _ in range(3):
        await asyncio.sleep(0)
    assert naps == [pytest.approx(0.020)] and not waiting.done()
    clock.t += 0.007  # the reply's first audio is ready 7 ms into the nap
    await track.write(tone24(100))
    await asyncio.wait_for(waiting, 1)
    assert sent[-1] == (pytest.approx(100.007), 960, True)  # 13 ms before its tick
    assert track.early_starts == 1
    assert track.reanchored_ms == pytest.approx(-13.0)
    # The schedule moved with it: the next frame is 20 ms after this one, not after the tick.
    track._sleep = clock.sleep
    await track.recv()
    assert sent[-1] == (pytest.approx(100.027), 1920, True)
    track.stop()


async def test_audio_already_queued_while_idle_goes_out_without_a_nap():
    clock = FakeClock()
    track = PacedAudioTrack(encode=False, clock=clock, sleep=clock.sleep)
    times: list[float] = []
    track.on_frame = lambda at, pts, voiced, faded: times.append(at)
    await track.recv()
    clock.t += 0.005  # written between two recv() calls
    await track.write(tone24(100))
    await track.recv()
    assert times[-1] == pytest.approx(100.005) and track.early_starts == 1


async def test_audio_written_mid_reply_keeps_the_tick():
    clock = FakeClock()
    track = PacedAudioTrack(encode=False, clock=clock, sleep=clock.sleep)
    times: list[float] = []
    track.on_frame = lambda at, pts, voiced, faded: times.append(at)
    await track.write(tone24(60))
    for _ in range(2):
        await track.recv()
    more = asyncio.ensure_future(track.write(tone24(100)))  # arrives while a frame is due
    for _ in range(4):
        await track.recv()
    await more
    assert np.allclose(np.diff(times), 0.020, atol=1e-9)  # no early frame mid-reply
    assert track.early_starts == 0
    track.stop()
