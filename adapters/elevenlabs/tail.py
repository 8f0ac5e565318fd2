"""The end of an upstream's PCM: held back so the last chunk can say it is the last."""

from __future__ import annotations

from adapters.base import PIPELINE_RATE_HZ

TAIL_BYTES = PIPELINE_RATE_HZ * 2 * 50 // 1000  # 50 ms held back to mark the segment's end
MIN_CHUNK_BYTES = PIPELINE_RATE_HZ * 2 * 20 // 1000  # network reads below 20 ms are merged


class TailHold:
    """Network bytes -> whole samples out at once, except the last 50 ms, which wait for the
    next bytes or for the end: the segment's last chunk then carries `is_final` and the
    orchestrator's crossfade has its tail."""

    def __init__(self) -> None:
        self._held = b""

    def push(self, data: bytes) -> bytes:
        self._held += data
        cut = len(self._held) - TAIL_BYTES
        cut -= cut % 2
        if cut < MIN_CHUNK_BYTES:
            return b""
        out, self._held = self._held[:cut], self._held[cut:]
        return out

    def finish(self) -> bytes:
        out, self._held = self._held, b""
        return out[: len(out) - len(out) % 2]  # half a sample cannot be played


__all__ = ["TailHold"]
