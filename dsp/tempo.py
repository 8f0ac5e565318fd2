"""Pitch-preserving speed change for engines without native speed control (FFmpeg atempo).

PyAV is imported when a stretch is first built: a server whose engines keep their own speed
never loads it."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import av.filter

from dsp.levels import align_samples

MIN_SPEED = 0.25
MAX_SPEED = 4.0


def atempo_factors(speed: float) -> list[float]:
    """Split speed into equal atempo stages within [0.5, 2.0], where atempo blends samples
    rather than skipping them (FFmpeg's advice for large factors)."""
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise ValueError(f"speed must be within {MIN_SPEED}..{MAX_SPEED}, got {speed}")
    stages = max(1, math.ceil(abs(math.log2(speed)) - 1e-9))
    return [speed ** (1.0 / stages)] * stages


class TimeStretcher:
    """Streaming s16le mono time stretch: duration scales by 1/speed, pitch is kept."""

    def __init__(self, sample_rate_hz: int, speed: float) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.speed = speed
        self._factors = atempo_factors(speed)
        self._passthrough = speed == 1.0
        self._carry = b""
        self._graph: av.filter.Graph | None = None
        self._pts = 0

    @property
    def passthrough(self) -> bool:
        return self._passthrough

    def _build(self) -> av.filter.Graph:
        import av.filter

        graph = av.filter.Graph()
        rate = self.sample_rate_hz
        node = graph.add_abuffer(
            format="s16", sample_rate=rate, layout="mono", time_base=Fraction(1, rate)
        )
        for factor in self._factors:
            stage = graph.add("atempo", f"{factor:.9f}")
            node.link_to(stage)
            node = stage
        fmt = graph.add("aformat", f"sample_fmts=s16:sample_rates={rate}:channel_layouts=mono")
        node.link_to(fmt)
        sink = graph.add("abuffersink")
        fmt.link_to(sink)
        graph.configure()
        return graph

    def _pull(self, graph: av.filter.Graph) -> bytes:
        parts = []
        while True:
            try:
                frame = graph.pull()
            except (BlockingIOError, EOFError):
                break
            parts.append(frame.to_ndarray().astype("<i2").tobytes())
        return b"".join(parts)

    def process(self, pcm: bytes) -> bytes:
        data, self._carry = align_samples(self._carry, pcm)
        if self._passthrough or not data:
            return data
        if self._graph is None:
            self._graph = self._build()
        import av

        samples = np.frombuffer(data, dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = self.sample_rate_hz
        frame.time_base = Fraction(1, self.sample_rate_hz)
        frame.pts = self._pts
        self._pts += samples.shape[1]
        self._graph.push(frame)
        return self._pull(self._graph)

    def flush(self) -> bytes:
        """The stretched remainder; the stretcher is then ready for a new stream."""
        graph, self._graph = self._graph, None  # passthrough: the odd byte is dropped too
        self._carry, self._pts = b"", 0
        if graph is None:
            return b""
        graph.push(None)
        return self._pull(graph)
