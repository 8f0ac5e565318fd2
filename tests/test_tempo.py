"""TimeStretcher: duration scales by 1/speed, pitch stays, audio streams, 1.0 is a no-op."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dsp.levels import float_to_pcm, pcm_to_float, rms_dbfs
from dsp.tempo import TimeStretcher, atempo_factors

RATE = 24000


def tone(freq_hz: float, seconds: float) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    return float_to_pcm(0.4 * np.sin(2 * np.pi * freq_hz * t))


def stretch(speed: float, pcm: bytes, piece_bytes: int = 4801) -> tuple[bytes, int]:
    stretcher = TimeStretcher(RATE, speed)
    outputs = [stretcher.process(pcm[i : i + piece_bytes]) for i in range(0, len(pcm), piece_bytes)]
    return b"".join(outputs) + stretcher.flush(), sum(1 for out in outputs if out)


def peak_hz(pcm: bytes) -> float:
    x = pcm_to_float(pcm)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * RATE / len(x))


@pytest.mark.parametrize("speed", [0.25, 0.5, 0.8, 1.5, 2.0, 4.0])
def test_duration_scales_and_pitch_is_kept(speed: float) -> None:
    pcm = tone(440, 3.0)
    out, non_empty = stretch(speed, pcm)
    seconds = len(out) / 2 / RATE
    assert abs(seconds - 3.0 / speed) <= 0.03 * 3.0 / speed, seconds
    assert non_empty >= 10  # stretched audio streams out while input arrives
    quarter = len(out) // 8 * 2  # whole samples
    middle = out[quarter : len(out) - quarter]
    assert abs(peak_hz(middle) - 440) <= 2 * RATE / (len(middle) // 2)  # within two FFT bins
    assert abs(rms_dbfs(middle) - rms_dbfs(pcm)) < 1.0


def test_speed_one_is_passthrough() -> None:
    pcm = tone(300, 0.2)
    stretcher = TimeStretcher(RATE, 1.0)
    assert stretcher.passthrough
    assert stretcher.process(pcm) is pcm and stretcher.flush() == b""
    assert stretcher.process(pcm[:3]) + stretcher.process(pcm[3:]) == pcm


def test_atempo_stages_stay_in_the_blending_range() -> None:
    for speed in (0.25, 0.3, 0.5, 0.9, 1.0, 1.7, 2.0, 3.0, 4.0):
        factors = atempo_factors(speed)
        assert math.isclose(math.prod(factors), speed, rel_tol=1e-9)
        assert all(0.5 - 1e-9 <= f <= 2.0 + 1e-9 for f in factors)
    assert len(atempo_factors(4.0)) == 2 and len(atempo_factors(1.5)) == 1
    for bad in (0.2, 4.5, 0.0, -1.0):
        with pytest.raises(ValueError):
            TimeStretcher(RATE, bad)


def test_reuse_after_flush_and_odd_bytes() -> None:
    pcm = tone(500, 1.0)
    stretcher = TimeStretcher(RATE, 2.0)
    first = stretcher.process(pcm) + stretcher.flush()
    second = b"".join(stretcher.process(pcm[i : i + 333]) for i in range(0, len(pcm), 333))
    second += stretcher.flush()
    assert abs(len(first) - len(second)) <= 2 * 256
    assert abs(len(second) / 2 / RATE - 0.5) <= 0.015
    assert stretcher.flush() == b""
