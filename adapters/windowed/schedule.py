"""The decoder windows of a sentence: how wide each is, the context decoded around it, and its
own samples out of what was decoded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Windows:
    """An engine's window sizes, in its frames: `first` for a listener with nothing ahead
    (first audio), doubling after; never more than `largest` (how long a window holds a
    core before other streams go); `pad` frames of context decoded each side; a window may
    take `lead_share` of the listener's lead to make."""

    first: int
    largest: int
    pad: int
    lead_share: float = 0.5

    def next_end(self, start: int, total: int, index: int, ahead_ms: float | None,
                 ms_per_frame: float | None, spent_ms: float = 0.0) -> int:
        """Where the window that begins at frame `start` of `total` ends.

        A listener with no audio ahead gets `first` frames, then windows that double; one
        with a lead gets the window it can afford: `lead_share` of its lead's worth of
        decoding at `ms_per_frame` (the decoder's recent wall time per frame), less
        `spent_ms` already spent in this step (the sentence's front), never more than
        `largest`. Every window costs two pads of decoding, so a small window is paid for by
        every stream on the machine: under load, the leads keep the windows large. A rest too
        short to be worth its two pads goes with this window.
        """
        size = self.first << min(index, 8)
        if ahead_ms is not None and ahead_ms > 0 and ms_per_frame:
            size = max(size, int((ahead_ms * self.lead_share - spent_ms) / ms_per_frame))
        size = min(size, self.largest)
        if total - start <= size + 2 * self.pad:
            return total
        return start + size

    def padded(self, start: int, end: int, total: int) -> tuple[int, int]:
        """The frames to decode for window [start, end): the window and its context."""
        return max(0, start - self.pad), min(total, end + self.pad)


def own_samples(audio: np.ndarray, start: int, end: int, decoded_from: int,
                samples_per_frame: int) -> np.ndarray:
    """Window [start, end)'s own samples out of the audio decoded from frame `decoded_from`."""
    first = (start - decoded_from) * samples_per_frame
    return audio[first:first + (end - start) * samples_per_frame]


__all__ = ["Windows", "own_samples"]
