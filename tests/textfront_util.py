"""Helpers for the text front end's tests: feed text whole and in deltas, compare what is said."""

from __future__ import annotations

from dsp.textfront import FrontOptions, Piece, TextFront, spoken_text
from dsp.textfront.pieces import merge_verbatim

DELTA_SIZES = (1, 3, 7)


def pieces(text: str, opts: FrontOptions | None = None, step: int = 0) -> list[Piece]:
    """Pieces for `text` pushed whole (step 0) or in `step`-character deltas, then end()."""
    front = TextFront(opts)
    out: list[Piece] = []
    if step <= 0:
        out += front.push(text)
    else:
        for i in range(0, len(text), step):
            out += front.push(text[i:i + step])
    out += front.end()
    return out


def said(text: str, opts: FrontOptions | None = None) -> str:
    """The spoken text, whitespace collapsed, after checking that 1-, 3- and 7-character deltas
    give exactly the same pieces as the whole text."""
    whole = merge_verbatim(pieces(text, opts))
    for step in DELTA_SIZES:
        streamed = merge_verbatim(pieces(text, opts, step))
        assert spoken_text(streamed) == spoken_text(whole), (step, text)
        assert streamed == whole, (step, text)
    return " ".join(spoken_text(whole).split())
