"""ElevenLabs character alignment from a stream's word marks.

Morpheus knows when each word is heard (server/stream.py `Words`, ms of the response's audio);
ElevenLabs clients want every character of their input with a start and an end. `CharAligner`
finds each word in the input text as it arrives and spreads the word's span evenly over its
characters; the characters between words (spaces, punctuation on its own, anything the engine
did not say) share the gap between the two words, so the characters tile the timeline without
going back: starts never decrease and each starts where the one before it ended.

Two renderings (reference/protocols.md 1.4 and 1.5):
- HTTP: `characters`, `character_start_times_seconds`, `character_end_times_seconds`, times in
  seconds from the start of the response (whole and streamed alike);
- WebSocket: `chars`, `charStartTimesMs`, `charDurationsMs`, integer milliseconds relative to
  the message: each message's times start from where the previous message's characters ended
  (on ElevenLabs that is the start of the message's audio). pipecat and LiveKit add them up in
  that way, so integer rounding is done on the absolute times and never accumulates.
`alignment` covers the client's input (a mark's `source` span places it exactly: "$1,234"
as typed); `normalized_alignment` the words as the engine got them ("one thousand two hundred
thirty-four dollars"), one space apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from server.core.events import WordMark

SEARCH_WINDOW_CHARS = 200  # a word not found this close to the last one was not said verbatim


@dataclass(frozen=True)
class CharTime:
    """One character and when it is heard, in ms of the response's audio."""

    char: str
    start_ms: float
    end_ms: float


def spread(text: str, start_ms: float, end_ms: float) -> list[CharTime]:
    """`text`'s characters sharing [start_ms, end_ms] evenly."""
    n = len(text)
    span = max(0.0, end_ms - start_ms)
    return [CharTime(c, start_ms + span * i / n, start_ms + span * (i + 1) / n)
            for i, c in enumerate(text)]


class CharAligner:
    """The input's characters with times, as its text and its word marks arrive."""

    def __init__(self, text: str = "") -> None:
        self._text = text
        self._pos = 0  # first input character not aligned yet
        self._cursor_ms = 0.0  # where the last aligned character ends
        self._spoken_any = False

    @property
    def text(self) -> str:
        return self._text

    def add_text(self, text: str) -> None:
        self._text += text

    def words(self, marks: Iterable[WordMark]) -> tuple[list[CharTime], list[CharTime]]:
        """(input characters, normalized characters) up to and including these words."""
        chars: list[CharTime] = []
        normalized: list[CharTime] = []
        for mark in marks:
            if mark.source is not None and mark.source[0] >= self._pos:
                at, length = mark.source[0], mark.source[1] - mark.source[0]
            else:  # a mark without its place in the input: look for it
                at = self._text.find(mark.text, self._pos, self._pos + SEARCH_WINDOW_CHARS
                                     + len(mark.text))
                length = len(mark.text)
            start = max(mark.start_ms, self._cursor_ms)
            end = max(mark.end_ms, start)
            if self._spoken_any:
                normalized += spread(" ", self._cursor_ms, start)
            normalized += spread(mark.spoken or mark.text, start, end)
            self._spoken_any = True
            if at < 0 or at + length > len(self._text):
                continue  # not in the input: its characters go with the next word's gap
            chars += spread(self._text[self._pos:at], self._cursor_ms, start)
            chars += spread(self._text[at:at + length], start, end)
            self._pos = at + length
            self._cursor_ms = end
        return chars, normalized

    def rest(self, end_ms: float | None = None) -> list[CharTime]:
        """The input after the last word (trailing spaces, unspoken text), ending at `end_ms`
        (default: where the last word ended). The aligner then has nothing left."""
        end = max(self._cursor_ms if end_ms is None else end_ms, self._cursor_ms)
        out = spread(self._text[self._pos:], self._cursor_ms, end)
        self._pos = len(self._text)
        self._cursor_ms = end
        return out


def seconds_alignment(chars: list[CharTime]) -> dict[str, Any] | None:
    """The HTTP shape (times in seconds from the start of the response); None when empty."""
    if not chars:
        return None
    return {
        "characters": [c.char for c in chars],
        "character_start_times_seconds": [round(c.start_ms / 1000, 3) for c in chars],
        "character_end_times_seconds": [round(c.end_ms / 1000, 3) for c in chars],
    }


class MsAlignment:
    """The WebSocket shape: integer ms relative to where the previous message's characters
    ended. One per alignment kind and stream (its origin moves with each message)."""

    def __init__(self) -> None:
        self._origin_ms = 0  # rounded absolute end of the last character sent

    def render(self, chars: list[CharTime]) -> dict[str, Any] | None:
        if not chars:
            return None
        starts, durations = [], []
        for c in chars:
            s = max(round(c.start_ms), self._origin_ms)
            e = max(round(c.end_ms), s)
            starts.append(s)
            durations.append(e - s)
        out = {"chars": [c.char for c in chars],
               "charStartTimesMs": [s - self._origin_ms for s in starts],
               "charDurationsMs": durations}
        self._origin_ms = starts[-1] + durations[-1]
        return out


__all__ = ["CharAligner", "CharTime", "MsAlignment", "seconds_alignment", "spread"]
