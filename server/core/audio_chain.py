"""Engine audio to pipeline audio, for one stream: resample to 24 kHz, time-stretch when the
engine cannot change its speed itself, and stitch segments with a short crossfade."""

from __future__ import annotations

from adapters.base import PIPELINE_RATE_HZ, AudioChunk, Capabilities
from dsp.resample import StreamResampler
from dsp.stitcher import Stitcher
from dsp.tempo import TimeStretcher

CROSSFADE_MS = 50


class AudioChain:
    """`begin(caps)` before each segment (or retry of one), `chunk()` per engine chunk,
    `end()` after the segment's last chunk, `flush()` when the stream ends; `reset()` drops
    what is held (barge-in)."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._stitcher = Stitcher(sample_rate_hz=PIPELINE_RATE_HZ, crossfade_ms=CROSSFADE_MS)
        self._resampler = StreamResampler(PIPELINE_RATE_HZ, PIPELINE_RATE_HZ)
        self._stretch: TimeStretcher | None = None

    def begin(self, caps: Capabilities) -> None:
        self._resampler = StreamResampler(caps.native_rate_hz, PIPELINE_RATE_HZ)
        self._stretch = (None if caps.native_speed or self.speed == 1.0
                         else TimeStretcher(PIPELINE_RATE_HZ, self.speed))
        self._stitcher.boundary()

    @property
    def scale(self) -> float:
        """Response ms per engine ms for the segment begun (1/speed when stretched)."""
        return 1.0 / self.speed if self._stretch is not None else 1.0

    def seam_offset_ms(self) -> float:
        """Where the next segment's first sample lands relative to the audio handed out: the
        crossfade tail held back overlaps it."""
        return self._stitcher.seam_offset() / (PIPELINE_RATE_HZ / 1000)

    def chunk(self, chunk: AudioChunk, *, hold_tail: bool) -> bytes:
        """Pipeline PCM to hand out now for `chunk` (voices may differ in rate mid-way)."""
        if chunk.sample_rate_hz != self._resampler.in_rate_hz:
            pcm = self._resampler.flush()
            self._resampler = StreamResampler(chunk.sample_rate_hz, PIPELINE_RATE_HZ)
            pcm += self._resampler.process(chunk.pcm)
        else:
            pcm = self._resampler.process(chunk.pcm)
        if chunk.is_final:
            pcm += self._resampler.flush()
        if self._stretch is not None:
            pcm = self._stretch.process(pcm) + (self._stretch.flush() if chunk.is_final else b"")
        return self._stitcher.process(pcm, hold_tail=hold_tail)

    def silence(self, ms: float) -> bytes:
        """`ms` of silence after the segment (a pause the text asked for): the segment fades
        into it and the next one fades out of it, like any seam."""
        self._stitcher.boundary()
        # both seams overlap the silence by a crossfade: add them, so `ms` is what is heard
        samples = int(PIPELINE_RATE_HZ * (ms + 2 * CROSSFADE_MS) / 1000)
        return self._stitcher.process(bytes(2 * samples), hold_tail=True)

    def end(self) -> bytes:
        """What the time-stretcher still holds of the segment."""
        if self._stretch is None:
            return b""
        return self._stitcher.process(self._stretch.flush())

    def flush(self) -> bytes:
        """The stream is over: the crossfade tail held back."""
        return self._stitcher.flush()

    def reset(self) -> None:
        self._stitcher.reset()


__all__ = ["AudioChain"]
