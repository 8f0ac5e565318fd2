"""Word timings on the response's timeline: the engine's own, carried, or estimated.

A `SegmentClock` places one segment's words. Engines that know their timings attach
WordTimings to chunks (ms from the segment's first sample, in the engine's own time); the
clock moves them to where the segment starts in the response and scales them by the pipeline's
time-stretch, and marks them exact. For other engines the words of the segment's text are
spread over its audio by length: while audio streams in, a word is placed once the audio made
so far covers its predicted end (predicted from the stream's learned pace), and the rest are
placed when the segment ends, in the time that is left, so marks never go back in time.
Either way a word is yielded before the audio that speaks it reaches the listener.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate

from adapters.base import AudioChunk
from server.core.events import WordMark


class SegmentClock:
    """The word marks of one segment, as its chunks arrive."""

    def __init__(self, text: str, *, origin_ms: float, scale: float,
                 pace_ms_per_char: float) -> None:
        self.origin_ms = origin_ms  # where the segment's first sample lands in the response
        self.scale = scale  # response ms per engine ms (1/speed when the pipeline stretches)
        self._words = text.split()
        # A word's share of the segment: its characters plus the gap after it.
        self._ends = list(accumulate(len(w) + 1 for w in self._words))
        self._weight = self._ends[-1] if self._ends else 1
        self._pace = pace_ms_per_char
        self._engine_ms = 0.0
        self._placed = 0
        self._cursor_ms = origin_ms  # end of the last word placed
        self._exact: bool | None = None  # decided by the first chunk

    def chunk(self, chunk: AudioChunk) -> list[WordMark]:
        """Marks to yield before this chunk's audio."""
        if self._exact is None:
            self._exact = bool(chunk.words)
        self._engine_ms += chunk.duration_ms
        if self._exact:
            return [WordMark(w.text, self.origin_ms + w.start_ms * self.scale,
                             self.origin_ms + w.end_ms * self.scale, True) for w in chunk.words]
        made_ms = self._engine_ms * self.scale
        predicted_ms = max(made_ms, self._weight * self._pace)
        out = []
        while self._placed < len(self._words):
            end = self.origin_ms + predicted_ms * self._ends[self._placed] / self._weight
            if end > self.origin_ms + made_ms:
                break
            out.append(self._place(end))
        return out

    def finish(self) -> list[WordMark]:
        """The segment's audio is complete: place the words still waiting in what is left."""
        if self._exact or self._placed >= len(self._words):
            return []
        end_ms = max(self.origin_ms + self._engine_ms * self.scale, self._cursor_ms)
        before = self._ends[self._placed - 1] if self._placed else 0
        span = self._weight - before
        left_ms = end_ms - self._cursor_ms
        start_ms = self._cursor_ms
        out = []
        while self._placed < len(self._words):
            share = (self._ends[self._placed] - before) / span
            out.append(self._place(start_ms + left_ms * share))
        return out

    def _place(self, end_ms: float) -> WordMark:
        mark = WordMark(self._words[self._placed], self._cursor_ms, max(end_ms, self._cursor_ms),
                        False)
        self._cursor_ms = mark.end_ms
        self._placed += 1
        return mark


def heard_text(words: Sequence[WordMark], played_ms: float) -> str:
    """The words the listener has heard in full by `played_ms` of the response's audio: the
    text a voice agent keeps in its history when the listener cuts the response off."""
    heard = []
    for w in words:
        if w.end_ms > played_ms:
            break
        heard.append(w.text)
    return " ".join(heard)


__all__ = ["SegmentClock", "heard_text"]
