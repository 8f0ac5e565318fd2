"""stitch / Stitcher: seam quality, byte-exact streaming, passthrough inside a segment."""

from __future__ import annotations

import random

import numpy as np
import pytest

from dsp.levels import float_to_pcm, pcm_to_float
from dsp.stitcher import Stitcher, stitch

RATE = 24000
XFADE_MS = 50
N = RATE * XFADE_MS // 1000  # 1200 samples


def sine(freq_hz: float, samples: int, phase: float = 0.0, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq_hz * np.arange(samples) / RATE + phase)


def run_stream(stitcher: Stitcher, chunks: list[bytes], rng: random.Random) -> bytes:
    out = []
    for i, chunk in enumerate(chunks):
        if i:
            stitcher.boundary()
        pos = 0
        while True:
            step = 2 * rng.randint(0, 900)  # arbitrary sample counts, empty calls included
            out.append(stitcher.process(chunk[pos : pos + step]))
            pos += step
            if pos >= len(chunk):
                break
    out.append(stitcher.flush())
    return b"".join(out)


@pytest.mark.parametrize("freq_hz", [110.0, 440.0, 1234.5, 3000.0])
def test_overlapping_split_of_a_sine_stitches_back(freq_hz: float) -> None:
    rng = random.Random(int(freq_hz))
    x = float_to_pcm(sine(freq_hz, RATE * 2, phase=0.3))
    ideal = pcm_to_float(x)
    for _ in range(5):
        k = rng.randint(N, RATE * 2 - 2 * N)  # the seam: chunk A ends k + N, chunk B starts k
        a, b = x[: 2 * (k + N)], x[2 * k :]
        y = pcm_to_float(stitch([a, b], XFADE_MS, RATE))
        assert len(y) == len(ideal)
        window = slice(k - N, k + 2 * N)
        residual = y[window] - ideal[window]
        residual_db = 10 * np.log10(np.mean(residual**2) / np.mean(ideal[window] ** 2) + 1e-20)
        assert residual_db < -45, residual_db


def test_seam_between_unrelated_segments_has_no_click() -> None:
    # segment A ends at a peak, segment B starts at a zero crossing going down: plain
    # concatenation jumps by the full amplitude at the seam
    a = float_to_pcm(sine(440, RATE, phase=np.pi / 2 - 2 * np.pi * 440 * (RATE - 1) / RATE))
    b = float_to_pcm(sine(440, RATE, phase=np.pi))
    natural_step = np.abs(np.diff(pcm_to_float(a))).max()
    plain = np.abs(np.diff(pcm_to_float(a + b)[RATE - 5 : RATE + 5])).max()
    assert plain > 4 * natural_step  # the check below can fail
    y = pcm_to_float(stitch([a, b], XFADE_MS, RATE))
    seam = slice(RATE - 2 * N, RATE + N)
    assert np.abs(np.diff(y[seam])).max() <= 1.2 * natural_step


def test_streaming_equals_one_shot_byte_exact() -> None:
    rng = random.Random(42)
    for trial in range(60):
        chunks: list[bytes] = []
        for _ in range(rng.randint(1, 6)):
            samples = rng.choice([0, 10, N - 1, N, N + 1, 3000, 9000, rng.randint(0, 20000)])
            noise = np.random.default_rng(trial * 10 + len(chunks)).standard_normal(samples)
            chunks.append(float_to_pcm(0.3 * noise))
        for curve in ("linear", "equal_power"):
            expected = stitch(chunks, XFADE_MS, RATE, curve=curve)
            got = run_stream(Stitcher(RATE, XFADE_MS, curve=curve), chunks, rng)
            assert got == expected, (trial, curve, [len(c) for c in chunks])


def test_audio_inside_a_segment_passes_unchanged() -> None:
    pcm = float_to_pcm(np.random.default_rng(1).uniform(-1, 1, 5000))
    stitcher = Stitcher(RATE, XFADE_MS)
    head = stitcher.process(pcm[:3000]) + stitcher.process(pcm[3000:])
    assert head == pcm[: len(pcm) - 2 * N]  # only delayed by the held tail
    assert stitcher.held_bytes == 2 * N
    assert head + stitcher.flush() == pcm


def test_lengths_short_chunks_and_reset() -> None:
    a, b, c = (float_to_pcm(sine(300, n)) for n in (5000, 400, 6000))
    assert len(stitch([a, c], XFADE_MS, RATE)) == len(a) + len(c) - 2 * N  # one overlap
    assert stitch([a, b], XFADE_MS, RATE) == a + b  # B shorter than the crossfade
    assert stitch([b, a], XFADE_MS, RATE) == b + a
    assert len(stitch([a, b, c], XFADE_MS, RATE)) == len(a) + len(b) + len(c) - 2 * N
    assert stitch([a, c], 0, RATE) == a + c
    assert stitch([], XFADE_MS, RATE) == b""
    stitcher = Stitcher(RATE, XFADE_MS)
    stitcher.process(a)
    stitcher.boundary()
    stitcher.process(b)
    stitcher.reset()  # barge-in: held audio is dropped, the next audio starts clean
    assert stitcher.held_bytes == 0
    assert stitcher.process(c) + stitcher.flush() == c


def test_equal_power_keeps_loudness_of_uncorrelated_audio() -> None:
    rng = np.random.default_rng(5)
    a, b = (float_to_pcm(0.2 * rng.standard_normal(RATE)) for _ in range(2))
    ref = np.mean(pcm_to_float(a) ** 2)

    def seam_db(curve: str) -> float:
        y = pcm_to_float(stitch([a, b], XFADE_MS, RATE, curve=curve))  # type: ignore[arg-type]
        return float(10 * np.log10(np.mean(y[RATE - N : RATE] ** 2) / ref))

    assert abs(seam_db("equal_power")) < 0.5
    assert seam_db("linear") < -1.0  # linear dips (about -1.8 dB) on uncorrelated audio


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        Stitcher(RATE, XFADE_MS).process(b"\x00")
    with pytest.raises(ValueError):
        stitch([b"\x00\x00"], -1, RATE)
    with pytest.raises(ValueError):
        Stitcher(RATE, XFADE_MS, curve="cubic")  # type: ignore[arg-type]


def test_hold_tail_false_passes_mid_segment_audio_through_whole():
    st = Stitcher(sample_rate_hz=24000, crossfade_ms=50)
    a = (np.arange(2400, dtype=np.int16) % 100).astype("<i2").tobytes()
    assert st.process(a, hold_tail=False) == a  # nothing held back mid-segment
    out = st.process(a)  # the segment's last chunk keeps the crossfade tail
    assert len(out) == len(a) - 2 * 1200
    assert st.flush() == a[-2400:]
