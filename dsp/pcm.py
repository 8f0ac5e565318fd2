"""Float audio to the pipeline's PCM: the one conversion every engine uses."""

from __future__ import annotations

from typing import Any

import numpy as np

FULL_SCALE = 32767.0  # symmetric: +1.0 and -1.0 map to +32767 and -32767, nothing wraps


def float_to_pcm16(audio: Any) -> bytes:
    """float samples in [-1, 1] (numpy, or a CPU tensor; anything beyond is clipped) ->
    rounded signed 16-bit little-endian PCM."""
    x = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * np.float32(FULL_SCALE)
    return np.rint(x).astype("<i2").tobytes()


__all__ = ["FULL_SCALE", "float_to_pcm16"]
