"""Seam smoothing between independently synthesized segments: overlap-add crossfades."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

Curve = Literal["linear", "equal_power"]
_I16 = npt.NDArray[np.int16]


def crossfade_samples(crossfade_ms: float, sample_rate_hz: int) -> int:
    if crossfade_ms < 0 or sample_rate_hz <= 0:
        raise ValueError(f"bad crossfade: {crossfade_ms} ms at {sample_rate_hz} Hz")
    return int(round(crossfade_ms * sample_rate_hz / 1000.0))


def _ramps(n: int, curve: Curve) -> tuple[np.ndarray, np.ndarray]:
    # sample-centred ramps: fade_in + fade_out == 1 (linear), so coherent audio sums back exactly
    t = (np.arange(n, dtype=np.float64) + 0.5) / n
    if curve == "linear":
        return 1.0 - t, t
    if curve == "equal_power":  # keeps loudness constant when the two sides are uncorrelated
        return np.cos(t * np.pi / 2), np.sin(t * np.pi / 2)
    raise ValueError(f"unknown crossfade curve: {curve!r}")


def _mix(tail: _I16, head: _I16, curve: Curve) -> _I16:
    fade_out, fade_in = _ramps(len(tail), curve)
    y = np.rint(tail * fade_out + head * fade_in)
    return np.clip(y, -32768, 32767).astype(np.int16)


def _as_i16(pcm: bytes) -> _I16:
    if len(pcm) % 2:
        raise ValueError(f"s16 PCM must have an even byte count, got {len(pcm)}")
    return np.frombuffer(pcm, dtype="<i2").astype(np.int16)


def stitch(
    chunks: Sequence[bytes],
    crossfade_ms: float = 50,
    sample_rate_hz: int = 24000,
    *,
    curve: Curve = "linear",
) -> bytes:
    """Join s16le mono segments, overlap-adding the last and first crossfade_ms of each pair.

    Each seam shortens the result by the crossfade (as Orpheus-FastAPI's stitcher does); a seam
    where either side is shorter than the crossfade is a plain concatenation.
    """
    n = crossfade_samples(crossfade_ms, sample_rate_hz)
    out: np.ndarray = np.zeros(0, dtype=np.int16)
    for i, chunk in enumerate(chunks):
        x = _as_i16(chunk)
        if i > 0 and n > 0 and len(out) >= n and len(x) >= n:
            out = np.concatenate((out[:-n], _mix(out[-n:], x[:n], curve), x[n:]))
        else:
            out = np.concatenate((out, x))
    return out.astype("<i2").tobytes()


class Stitcher:
    """Streaming stitch(): audio passes through unchanged, delayed by the held crossfade tail.

    process(pcm) returns what is ready; boundary() says the next audio starts a new segment,
    whose first crossfade_ms is mixed with the held tail; flush() releases the tail and
    ends the stream; reset() drops everything held (barge-in). Output for a sequence of
    segments equals stitch() of them, byte for byte, however the audio is split.
    """

    def __init__(
        self, sample_rate_hz: int = 24000, crossfade_ms: float = 50, *, curve: Curve = "linear"
    ) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.crossfade_ms = crossfade_ms
        self._n = crossfade_samples(crossfade_ms, sample_rate_hz)
        self._curve = curve
        _ramps(1, curve)  # validate the curve name now, not at the first seam
        self.reset()

    @property
    def held_bytes(self) -> int:
        return 2 * (len(self._tail) + len(self._head))

    def reset(self) -> None:
        self._tail: np.ndarray = np.zeros(0, dtype=np.int16)  # end of the stream, not yet sent (>= n kept)
        self._head: np.ndarray = np.zeros(0, dtype=np.int16)  # start of a new segment, waiting for n samples
        self._at_seam = False
        self._hold = True

    def process(self, pcm: bytes, *, hold_tail: bool = True) -> bytes:
        """`hold_tail=False` for audio known not to end a segment: no crossfade tail is kept,
        so it goes out whole (less latency); the segment's last chunk must hold the tail."""
        x = _as_i16(pcm)
        self._hold = hold_tail
        if self._at_seam:
            self._head = np.concatenate((self._head, x))
            if len(self._head) < self._n:
                return b""
            return self._join_head()
        return self._emit(np.concatenate((self._tail, x)))

    def boundary(self) -> None:
        if self._at_seam:
            # the segment since the last boundary is shorter than the crossfade: plain join
            self._tail = np.concatenate((self._tail, self._head))
            self._head = np.zeros(0, dtype=np.int16)
        self._at_seam = self._n > 0

    def seam_offset(self) -> int:
        """Right after boundary(): how many samples past what process() has returned so far
        the next segment's first sample will land (the held tail, less the crossfade)."""
        tail = len(self._tail)
        return tail - self._n if self._at_seam and tail >= self._n else tail

    def flush(self) -> bytes:
        # a pending head here is shorter than the crossfade (process joins longer ones)
        out = np.concatenate((self._tail, self._head)).astype("<i2").tobytes()
        self.reset()
        return out

    def _join_head(self) -> bytes:
        n, head, tail = self._n, self._head, self._tail
        self._head = np.zeros(0, dtype=np.int16)
        self._at_seam = False
        if len(tail) >= n:
            mixed = _mix(tail[len(tail) - n :], head[:n], self._curve)
            return self._emit(np.concatenate((tail[: len(tail) - n], mixed, head[n:])))
        return self._emit(np.concatenate((tail, head)))

    def _emit(self, pending: _I16) -> bytes:
        # hold back the last n samples: they may be crossfaded with the next segment
        cut = max(0, len(pending) - self._n) if self._hold else len(pending)
        self._tail = pending[cut:]
        return pending[:cut].astype("<i2").tobytes()
