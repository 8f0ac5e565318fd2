"""The streaming text front end: client text deltas in, pieces of speech out.

    front = TextFront(FrontOptions())
    pieces = front.push("**Sure!** Here")   # what is decided so far
    pieces += front.push("'s the plan")
    pieces += front.end()                   # the rest

Text is cut into units where the cut cannot change how anything is read (see cutter.py for the
bound on what is held back); each unit goes through block markup, inline markup, the lexicon and
the language's normalizer. Feeding a text whole or in deltas of any size gives the same pieces.
`flush()` is the client asking to speak what it has: the buffer's end counts as a boundary.
Nothing raises on any input text.
"""

from __future__ import annotations

import re

from dsp.textfront.blocks import Blocks
from dsp.textfront.cutter import Cutter
from dsp.textfront.languages import Normalizer, normalizer_for
from dsp.textfront.options import FrontOptions
from dsp.textfront.pieces import Piece
from dsp.textfront.render import render

_LAST_WORD = re.compile(r"\S+$")
_HEAD_WORD = re.compile(r"\S*")
_URL_START = re.compile(r"(?i)[^\w]{0,3}(?:https?://|www\.)")


class TextFront:
    """One stream's front end. Not thread-safe: one stream pushes from one task."""

    def __init__(self, options: FrontOptions | None = None) -> None:
        self.options = opts = options or FrontOptions()
        lang = normalizer_for(opts.language)
        self._norm: Normalizer | None = lang if opts.normalize else None
        say_as = None
        if lang is not None:
            def say_as(kind: str, text: str, fmt: str | None) -> str | None:
                return lang.say_as(kind, text, fmt, opts)
        self._blocks = Blocks(opts, say_as)
        first_words = opts.lexicon.first_words

        def sticky(word: str) -> bool:
            if first_words and word.strip(".,;:!?\"'()").lower() in first_words:
                return True
            return lang.sticky(word) if lang is not None else False

        self._cutter = Cutter(sticky)
        self._buf = ""
        self._base = 0  # source offset of _buf[0]
        self._ended = False
        self._url_tail = False  # the last unit ended inside a URL too long for one unit

    @property
    def consumed(self) -> int:
        """Characters of the client's text decided so far (pieces cover up to here)."""
        return self._base

    @property
    def pending(self) -> str:
        """Text held back, waiting for what follows to decide how it is read."""
        return self._buf

    def push(self, delta: str) -> list[Piece]:
        """Add a delta; returns the pieces it decided (often none: a word waits for the next)."""
        if self._ended:
            raise RuntimeError("push() after end()")
        if not delta:
            return []
        self._buf += delta
        return self._drain(final=False)

    def flush(self) -> list[Piece]:
        """Decide everything buffered, as if the text ended here, and go on afterwards."""
        return self._drain(final=True)

    def end(self) -> list[Piece]:
        """No more text: decide the rest and close the last line."""
        if self._ended:
            return []
        pieces = self._drain(final=True, last=True)
        self._ended = True
        if not self._blocks.st.at_line_start:
            pieces += render(self._blocks.line_end(self._base, newline=False), self.options,
                             self._norm, self.options.lexicon)
        return pieces

    def _drain(self, *, final: bool, last: bool = False) -> list[Piece]:
        out: list[Piece] = []
        while self._buf:
            cut = self._cutter.cut(self._buf, final=final, in_code=bool(self._blocks.st.fence))
            if cut is None:
                break
            self._cutter.reset()
            unit, self._buf = self._buf[:cut], self._buf[cut:]
            text, all_url = unit, False
            if self._url_tail:  # the rest of a URL whose head the last unit read: not read
                n = _HEAD_WORD.match(unit).end()  # type: ignore[union-attr]
                text, all_url = "\x00" * n + unit[n:], n == len(unit)
            mid_word = not unit[-1].isspace() and self._buf[:1] and not self._buf[0].isspace()
            tail = _LAST_WORD.search(unit)
            self._url_tail = bool(mid_word) and (
                all_url or bool(tail and _URL_START.match(tail.group())))
            items = self._blocks.unit(text, self._base, last=last and not self._buf)
            self._base += cut
            out += render(items, self.options, self._norm, self.options.lexicon)
        return out


__all__ = ["TextFront"]
