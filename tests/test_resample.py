"""StreamResampler / resample: lengths, pitch, streaming vs one-shot, passthrough."""

from __future__ import annotations

import random

import numpy as np
import pytest

from dsp.levels import float_to_pcm, pcm_to_float
from dsp.resample import StreamResampler, resample

RATE_PAIRS = [(22050, 24000), (16000, 24000), (24000, 48000), (44100, 24000), (48000, 24000)]


def tone(freq_hz: float, rate_hz: int, seconds: float, amp: float = 0.5) -> bytes:
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    return float_to_pcm(amp * np.sin(2 * np.pi * freq_hz * t))


def peak_hz(pcm: bytes, rate_hz: int) -> float:
    x = pcm_to_float(pcm) * np.hanning(len(pcm) // 2)
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.argmax(spectrum) * rate_hz / len(x))


def stream(resampler: StreamResampler, pcm: bytes, rng: random.Random) -> tuple[bytes, int]:
    out, pos, non_empty = [], 0, 0
    while pos < len(pcm):
        step = rng.randint(1, 4001)  # odd byte counts too: a sample may straddle two calls
        piece = resampler.process(pcm[pos : pos + step])
        non_empty += bool(piece)
        out.append(piece)
        pos += step
    out.append(resampler.flush())
    return b"".join(out), non_empty


def test_equal_rates_pass_through() -> None:
    pcm = tone(440, 24000, 0.1)
    resampler = StreamResampler(24000, 24000)
    assert resampler.passthrough
    assert resampler.process(pcm) is pcm and resampler.flush() == b""
    assert resampler.process(b"") == b""
    assert resample(pcm, 24000, 24000) is pcm
    # upstream bytes cut mid-sample still come out as whole samples, none lost or shifted
    pieces = [resampler.process(pcm[i : i + 101]) for i in range(0, len(pcm), 101)]
    assert all(len(p) % 2 == 0 for p in pieces) and b"".join(pieces) == pcm
    assert resampler.process(b"\x05") == b"" and resampler.flush() == b""
    assert resampler.process(pcm) is pcm  # the dangling byte went with the flush


@pytest.mark.parametrize(("in_hz", "out_hz"), RATE_PAIRS)
def test_length_ratio_and_pitch(in_hz: int, out_hz: int) -> None:
    pcm = tone(1000, in_hz, 1.0)
    expected = len(pcm) // 2 * out_hz / in_hz
    one_shot = resample(pcm, in_hz, out_hz)
    streamed, non_empty = stream(StreamResampler(in_hz, out_hz), pcm, random.Random(in_hz))
    assert abs(len(one_shot) // 2 - expected) <= 2
    assert abs(len(streamed) // 2 - expected) <= 3
    assert non_empty > 5  # audio comes out while input is still arriving
    for out in (one_shot, streamed):
        assert abs(peak_hz(out, out_hz) - 1000) <= 2.0  # 1 Hz FFT bins over one second


@pytest.mark.parametrize(("in_hz", "out_hz"), RATE_PAIRS)
def test_streamed_matches_one_shot(in_hz: int, out_hz: int) -> None:
    rng = np.random.default_rng(7)
    # speech-like: a few harmonics under a syllable-rate envelope, plus a little noise
    t = np.arange(in_hz * 2) / in_hz
    x = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((180, 360, 540, 900), 1))
    x = 0.3 * x * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)) + 0.01 * rng.standard_normal(t.size)
    pcm = float_to_pcm(x)
    a = pcm_to_float(resample(pcm, in_hz, out_hz))
    b = pcm_to_float(stream(StreamResampler(in_hz, out_hz), pcm, random.Random(3))[0])
    n = min(len(a), len(b))
    assert abs(len(a) - len(b)) <= 3
    residual_db = 10 * np.log10(np.mean((a[:n] - b[:n]) ** 2) / np.mean(a[:n] ** 2))
    assert residual_db < -60, residual_db  # soxr itself differs run to run by a few LSB


def test_reuse_after_flush_and_odd_bytes() -> None:
    pcm = tone(300, 22050, 0.5)
    resampler = StreamResampler(22050, 24000)
    first = resampler.process(pcm) + resampler.flush()
    # the same audio delivered one byte at a time: the carried byte must not shift samples
    second = b"".join(resampler.process(pcm[i : i + 1]) for i in range(len(pcm)))
    second += resampler.flush()
    assert abs(len(first) - len(second)) <= 4
    n = min(len(first), len(second)) // 2
    diff = np.abs(pcm_to_float(first)[:n] - pcm_to_float(second)[:n])
    assert diff.max() < 1e-3
    assert resampler.flush() == b""


def test_rejects_bad_rates() -> None:
    with pytest.raises(ValueError):
        StreamResampler(0, 24000)
    with pytest.raises(ValueError):
        resample(b"\x00\x00", 24000, -1)
