"""Sample-rate conversion for s16le mono PCM with soxr, one-shot or streaming."""

from __future__ import annotations

import numpy as np
import soxr

from dsp.levels import align_samples

_QUALITY = "HQ"


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2")


def resample(pcm: bytes, in_rate_hz: int, out_rate_hz: int) -> bytes:
    """Resample a whole s16le mono buffer; same bytes back when the rates are equal."""
    _check_rates(in_rate_hz, out_rate_hz)
    if in_rate_hz == out_rate_hz or not pcm:
        return pcm
    usable = len(pcm) - (len(pcm) % 2)
    y = soxr.resample(_samples(pcm[:usable]), in_rate_hz, out_rate_hz, quality=_QUALITY)
    return np.asarray(y, dtype="<i2").tobytes()


def _check_rates(in_rate_hz: int, out_rate_hz: int) -> None:
    if in_rate_hz <= 0 or out_rate_hz <= 0:
        raise ValueError(f"sample rates must be positive: {in_rate_hz} -> {out_rate_hz}")


class StreamResampler:
    """Streaming s16le mono resampler: feed any byte sizes to process(), end with flush().

    Output lags input by the filter delay (a few ms at HQ); flush() returns the rest and
    leaves the resampler ready for a new stream.
    """

    def __init__(self, in_rate_hz: int, out_rate_hz: int) -> None:
        _check_rates(in_rate_hz, out_rate_hz)
        self.in_rate_hz = in_rate_hz
        self.out_rate_hz = out_rate_hz
        self._passthrough = in_rate_hz == out_rate_hz
        self._carry = b""  # an odd trailing byte waits for its partner
        self._stream: soxr.ResampleStream | None = None
        if not self._passthrough:
            self._stream = self._new_stream()

    def _new_stream(self) -> soxr.ResampleStream:
        # a fresh stream per utterance: soxr's clear() does not restore the initial state
        return soxr.ResampleStream(
            self.in_rate_hz, self.out_rate_hz, 1, dtype="int16", quality=_QUALITY
        )

    @property
    def passthrough(self) -> bool:
        return self._passthrough

    def process(self, pcm: bytes) -> bytes:
        """Resampled audio ready now; an odd trailing byte waits for the next call."""
        data, self._carry = align_samples(self._carry, pcm)
        if self._stream is None or not data:
            return data
        y = self._stream.resample_chunk(_samples(data), last=False)
        return np.asarray(y, dtype="<i2").tobytes()

    def flush(self) -> bytes:
        self._carry = b""  # half a sample cannot be played
        if self._stream is None:
            return b""
        y = self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        self._stream = self._new_stream()
        return np.asarray(y, dtype="<i2").tobytes()
