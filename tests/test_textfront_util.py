"""Helpers for the text front end's tests: feed text whole and in deltas, compare what is said."""

from __future__ import annotations

from dsp.textfront import FrontOptions, Piece, Say, TextFront, spoken_text
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


def test_deltas_cover_the_whole_text() -> None:
    text = "Hello **world**, it's $5 🎉\n- one\n- two"
    for step in (0, *DELTA_SIZES, len(text) + 5):
        ps = pieces(text, step=step)
        assert " ".join(spoken_text(ps).split()) == "Hello world, it's five dollars one. two."
        assert max(p.end for p in ps) == len(text)


def test_said_catches_a_piece_split_that_differs() -> None:
    # merge_verbatim is what makes differently split verbatim text compare equal
    assert merge_verbatim([Say(0, 2, "ab", True), Say(2, 3, "c", True)]) == [Say(0, 3, "abc", True)]
    assert merge_verbatim([Say(0, 2, "ab", True), Say(3, 4, "c", True)]) != [Say(0, 3, "abc", True)]
