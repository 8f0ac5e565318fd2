"""What the engine says against what the client typed: word marks moved back onto the client's
own text, and the text a listener heard when the response was cut off.

The text front end (dsp/textfront) turns the client's text into pieces of speech, each tied to a
span of that text. The chunker cuts the spoken text into segments on whitespace only, so every
non-whitespace spoken character keeps its place: segment words are located by counting those
characters (`SpokenMap`), never by searching for the words. `SourceMarks` turns the marks of
spoken words into marks of the client's words: a word said as typed maps to itself; the words a
rewrite produced ("one thousand two hundred thirty-four dollars") become one mark for what was
typed ("$1,234"), spanning their time, once the last of them has been placed.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable

from dsp.textfront import Piece, Say, SourceMap
from server.core.events import WordMark


class SpokenMap:
    """The spoken text of one stream as pieces arrive, addressable by non-whitespace index."""

    def __init__(self) -> None:
        self.map = SourceMap()
        self._nws: list[int] = []  # spoken offset of each non-whitespace spoken character
        self._piece_starts: list[int] = []  # spoken offset where each piece starts
        self._piece_ends: list[int] = []

    def add(self, pieces: Iterable[Piece]) -> None:
        for p in pieces:
            at = self.map.spoken_len
            spoken = p.spoken
            self.map.extend([p])
            self._piece_starts.append(at)
            self._piece_ends.append(at + len(spoken))
            self._nws.extend(at + i for i, ch in enumerate(spoken) if not ch.isspace())

    @property
    def chars(self) -> int:
        """Non-whitespace spoken characters so far."""
        return len(self._nws)

    def spoken_range(self, first: int, last: int) -> tuple[int, int]:
        """Spoken offsets [start, end) of non-whitespace characters first..last-1."""
        first = min(max(first, 0), max(len(self._nws) - 1, 0))
        last = min(max(last, first + 1), len(self._nws))
        if not self._nws:
            return 0, 0
        return self._nws[first], self._nws[last - 1] + 1

    def typed(self, source: str, spoken_start: int, spoken_end: int) -> str:
        """What the client typed for these spoken characters, markup between pieces left out
        ("page." for "[the page](https://...)." rather than the link's markup)."""
        parts: list[str] = []
        k = max(0, bisect_right(self._piece_starts, spoken_start) - 1)
        while k < len(self.map.pieces) and self._piece_starts[k] < spoken_end:
            p, ps, pe = self.map.pieces[k], self._piece_starts[k], self._piece_ends[k]
            if pe > spoken_start and pe > ps:
                if isinstance(p, Say) and p.verbatim:
                    parts.append(source[p.start + max(spoken_start - ps, 0):
                                        p.start + min(spoken_end, pe) - ps])
                else:
                    parts.append(source[p.start:p.end])
            k += 1
        return "".join(parts).strip()

    def group_end(self, spoken_start: int, spoken_end: int) -> int:
        """Where the group of words these spoken characters belong to ends (spoken offset):
        a word said as typed is its own group; a rewritten piece is one group."""
        k = bisect_right(self._piece_starts, spoken_start) - 1
        end = spoken_end
        while 0 <= k < len(self.map.pieces) and self._piece_starts[k] < spoken_end:
            p = self.map.pieces[k]
            if not (isinstance(p, Say) and p.verbatim):
                text = p.spoken
                end = max(end, self._piece_starts[k] + len(text.rstrip()))
            k += 1
        return end


class SourceMarks:
    """Marks of spoken words in, marks of the client's words out (see the module docstring)."""

    def __init__(self, spoken: SpokenMap, source: str = "") -> None:
        self._spoken = spoken
        self.source = source  # the client's text so far (the stream appends to it)
        self._group: list[WordMark] = []
        self._group_span: tuple[int, int] | None = None
        self._group_spoken: tuple[int, int] = (0, 0)
        self._group_end = 0
        self.heard_upto: list[tuple[float, int]] = []  # (end ms, spoken chars up to there)

    def place(self, mark: WordMark, first: int, last: int) -> list[WordMark]:
        """`mark` spoke non-whitespace characters first..last-1 of the stream's spoken text."""
        s, e = self._spoken.spoken_range(first, last)
        span = self._spoken.map.source_span(s, e)
        out: list[WordMark] = []
        if self._group and s >= self._group_end:
            out += self.flush()
        if not self._group:
            self._group_span = span
            self._group_spoken = (s, e)
            self._group_end = self._spoken.group_end(s, e)
        elif span is not None:  # "fourth." of "3/4.": the rewrite and the stop after it
            old = self._group_span or span
            self._group_span = (min(old[0], span[0]), max(old[1], span[1]))
            self._group_end = max(self._group_end, self._spoken.group_end(s, e))
        self._group.append(mark)
        self._group_spoken = (self._group_spoken[0], e)
        if e >= self._group_end:
            out += self.flush()
        return out

    def flush(self) -> list[WordMark]:
        """The group in progress as one mark (at the end of the stream, or of a failover)."""
        if not self._group:
            return []
        marks, self._group = self._group, []
        span = self._group_span
        spoken = " ".join(m.text for m in marks)
        text = self._spoken.typed(self.source, *self._group_spoken)
        mark = WordMark(text or spoken, marks[0].start_ms, max(m.end_ms for m in marks),
                        all(m.exact for m in marks), spoken=spoken, source=span)
        self.heard_upto.append((mark.end_ms, self._group_spoken[1]))
        return [mark]

    def heard_text(self, played_ms: float) -> str:
        """The client's own text heard in full by `played_ms` (markup around it included)."""
        heard = 0
        for end_ms, upto in self.heard_upto:
            if end_ms > played_ms:
                break
            heard = upto
        if not heard:
            return ""
        return self._spoken.map.heard_source(self.source, heard)


__all__ = ["SourceMarks", "SpokenMap"]
