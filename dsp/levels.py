"""Level meters and s16le <-> float conversion for mono PCM."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

SILENCE_DBFS = -120.0  # the floor reported for digital silence (and empty input)
_FULL_SCALE = 32768.0


def pcm_to_float(pcm: bytes) -> npt.NDArray[np.float32]:
    """s16le bytes -> float32 samples in [-1, 1); a trailing odd byte is ignored."""
    usable = len(pcm) - (len(pcm) % 2)
    return np.frombuffer(pcm[:usable], dtype="<i2").astype(np.float32) / _FULL_SCALE


def float_to_pcm(x: npt.ArrayLike) -> bytes:
    """Float samples -> s16le bytes, rounded and clipped; exact inverse of pcm_to_float."""
    scaled = np.rint(np.asarray(x, dtype=np.float64) * _FULL_SCALE)
    return np.clip(scaled, -32768, 32767).astype("<i2").tobytes()


def align_samples(carry: bytes, pcm: bytes) -> tuple[bytes, bytes]:
    """(whole s16 samples, odd byte left over) for a stream cut at arbitrary byte offsets."""
    if not carry and not len(pcm) % 2:
        return pcm, b""  # the common case: no copy
    data = carry + pcm
    usable = len(data) - len(data) % 2
    return data[:usable], data[usable:]


def _to_dbfs(value: float) -> float:
    if value <= 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20.0 * math.log10(value))


def rms_dbfs(pcm: bytes) -> float:
    """RMS level in dBFS (a full-scale square wave is 0 dBFS); silence -> SILENCE_DBFS."""
    x = pcm_to_float(pcm).astype(np.float64)
    if x.size == 0:
        return SILENCE_DBFS
    return _to_dbfs(float(np.sqrt(np.mean(x * x))))


def peak_dbfs(pcm: bytes) -> float:
    """Peak sample level in dBFS; silence -> SILENCE_DBFS."""
    x = pcm_to_float(pcm)
    if x.size == 0:
        return SILENCE_DBFS
    return _to_dbfs(float(np.max(np.abs(x))))
