"""From what was spoken back to what the client typed: word spans and the text heard so far.

Offsets into the spoken text (the concatenation of the pieces' spoken characters) map to spans
of the client's text: a verbatim piece char for char, any other piece as a whole ("$1,234.56"
for every word of "one thousand ... cents"). Markup has no piece: the text heard so far takes in
markup that touches the heard words from the right ("**Sure!**", not "**Sure!"), and leaves
markup that opens what was not heard ("Sure! " rather than "Sure! **").
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable

from dsp.textfront.pieces import Piece, Say

_WORD = re.compile(r"\S+")


class SourceMap:
    """The pieces of one stream, added as they come, with their offsets in the spoken text."""

    def __init__(self, pieces: Iterable[Piece] = ()) -> None:
        self.pieces: list[Piece] = []
        self._starts: list[int] = []  # spoken offset of each piece
        self._parts: list[str] = []
        self.spoken_len = 0
        self.extend(pieces)

    def extend(self, pieces: Iterable[Piece]) -> None:
        for p in pieces:
            self.pieces.append(p)
            self._starts.append(self.spoken_len)
            s = p.spoken
            self._parts.append(s)
            self.spoken_len += len(s)

    @property
    def spoken_text(self) -> str:
        return "".join(self._parts)

    def source_span(self, start: int, end: int) -> tuple[int, int] | None:
        """The span of the client's text that spoken characters [start, end) came from."""
        lo: int | None = None
        hi = 0
        k = max(0, bisect_right(self._starts, start) - 1)
        while k < len(self.pieces) and self._starts[k] < end:
            p, ps = self.pieces[k], self._starts[k]
            pe = ps + len(self._parts[k])
            if pe > start and pe > ps:
                if isinstance(p, Say) and p.verbatim:
                    s, e = p.start + max(start - ps, 0), p.start + min(end, pe) - ps
                else:
                    s, e = p.start, p.end
                lo = s if lo is None else min(lo, s)
                hi = max(hi, e)
            k += 1
        return None if lo is None else (lo, hi)

    def words(self) -> list[tuple[str, int, int]]:
        """Each whitespace-separated spoken word with its source span (start, end)."""
        text = self.spoken_text
        out = []
        for m in _WORD.finditer(text):
            span = self.source_span(m.start(), m.end()) or (0, 0)
            out.append((m.group(), span[0], span[1]))
        return out

    def chars_after_words(self, n_words: int) -> int:
        """Spoken characters up to the end of the first `n_words` words (as a segment clock
        counts them: whitespace-separated)."""
        if n_words <= 0:
            return 0
        for i, m in enumerate(_WORD.finditer(self.spoken_text), 1):
            if i == n_words:
                return m.end()
        return self.spoken_len

    def heard_end(self, heard_chars: int, source: str | None = None) -> int:
        """Source offset up to which the client's text was heard, given the spoken characters
        heard. A rewritten piece counts only when heard in full. With `source`, markup right
        after the heard text (up to the next whitespace or spoken piece) is taken in."""
        end = 0
        heard = False
        nxt: int | None = None
        for p, ps, part in zip(self.pieces, self._starts, self._parts, strict=True):
            pe = ps + len(part)
            if pe <= heard_chars and (pe > ps or ps < heard_chars):
                end, heard = max(end, p.end), heard or pe > ps
                continue
            if ps < heard_chars < pe and isinstance(p, Say) and p.verbatim:
                end = max(end, p.start + heard_chars - ps)
                nxt = end
            else:
                nxt = p.start
            break
        if source is not None and heard:
            stop = len(source) if nxt is None else max(end, nxt)
            while end < stop and not source[end].isspace():
                end += 1
        return end

    def heard_source(self, source: str, heard_chars: int) -> str:
        """The client's own text that was heard: what an agent keeps in its history."""
        return source[:self.heard_end(heard_chars, source)]


def source_span(pieces: Iterable[Piece], start: int, end: int) -> tuple[int, int] | None:
    """The source span that spoken characters [start, end) came from (see SourceMap)."""
    return SourceMap(pieces).source_span(start, end)


def heard_source(source: str, pieces: Iterable[Piece], heard_chars: int) -> str:
    """The client's text heard when `heard_chars` spoken characters were heard."""
    return SourceMap(pieces).heard_source(source, heard_chars)


__all__ = ["SourceMap", "heard_source", "source_span"]
