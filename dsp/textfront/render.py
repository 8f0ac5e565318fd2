"""Atoms to pieces: the lexicon, then the language's rewrites, each mapped to its source span."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from dsp.textfront.inline import Atom
from dsp.textfront.languages import Normalizer, Rewrite
from dsp.textfront.lexicon import Lexicon
from dsp.textfront.options import FrontOptions
from dsp.textfront.pieces import Phonemes, Piece, Say, merge_verbatim


class _Run:
    """Consecutive atoms as one string, with the way back from its offsets to the source."""

    def __init__(self, atoms: Sequence[Atom]) -> None:
        self.atoms = atoms
        self.text = "".join(a.text for a in atoms)
        self.offsets: list[int] = []
        pos = 0
        for a in atoms:
            self.offsets.append(pos)
            pos += len(a.text)

    def _atom(self, i: int) -> tuple[Atom, int]:
        k = bisect_right(self.offsets, i) - 1
        return self.atoms[k], i - self.offsets[k]

    def src_start(self, i: int) -> int:
        if i >= len(self.text):
            return self.atoms[-1].end
        a, off = self._atom(i)
        return a.start + off if a.exact else a.start

    def src_end(self, i: int) -> int:
        if i <= 0:
            return self.atoms[0].start
        a, off = self._atom(i - 1)
        return a.start + off + 1 if a.exact else a.end

    def verbatim(self, i: int, j: int, out: list[Piece]) -> None:
        """The text [i, j) unchanged: exact atoms char for char, the others as a whole."""
        if j <= i:
            return
        k = bisect_right(self.offsets, i) - 1
        while k < len(self.atoms) and self.offsets[k] < j:
            a, o = self.atoms[k], self.offsets[k]
            lo, hi = max(i, o), min(j, o + len(a.text))
            if hi > lo:
                if a.exact:
                    out.append(Say(a.start + lo - o, a.start + hi - o, a.text[lo - o:hi - o], True))
                elif lo == o:
                    out.append(Say(a.start, a.end, a.text[lo - o:hi - o]))
                else:
                    out.append(Say(a.end, a.end, a.text[lo - o:hi - o]))
            k += 1


def render(items: Sequence[Atom | Piece], opts: FrontOptions, norm: Normalizer | None,
           lexicon: Lexicon) -> list[Piece]:
    out: list[Piece] = []
    atoms: list[Atom] = []
    for it in items:
        if isinstance(it, Atom):
            atoms.append(it)
            continue
        if atoms:
            _render_run(_Run(atoms), opts, norm, lexicon, out)
            atoms = []
        out.append(it)
    if atoms:
        _render_run(_Run(atoms), opts, norm, lexicon, out)
    return merge_verbatim(out)


def _render_run(run: _Run, opts: FrontOptions, norm: Normalizer | None, lexicon: Lexicon,
                out: list[Piece]) -> None:
    pos = 0
    for hit in lexicon.find(run.text) if lexicon else ():
        if hit.ipa is None and hit.say == run.text[hit.start:hit.end]:
            continue  # a phoneme entry for an engine without phonemes, and no alias
        _normalize(run, pos, hit.start, opts, norm, out)
        s, e = run.src_start(hit.start), run.src_end(hit.end)
        if hit.ipa is not None and opts.phonemes:
            out.append(Phonemes(s, e, hit.say, hit.ipa))
        elif hit.say != run.text[hit.start:hit.end]:
            out.append(Say(s, e, hit.say))
        else:
            run.verbatim(hit.start, hit.end, out)
        pos = hit.end
    _normalize(run, pos, len(run.text), opts, norm, out)


def _normalize(run: _Run, i: int, j: int, opts: FrontOptions, norm: Normalizer | None,
               out: list[Piece]) -> None:
    if j <= i:
        return
    rewrites: list[Rewrite] = norm.rewrites(run.text[i:j], opts) if norm is not None else []
    pos = i
    for r in rewrites:
        a, b = i + r.start, i + r.end
        run.verbatim(pos, a, out)
        if r.say:
            out.append(Say(run.src_start(a), run.src_end(b), r.say))
        pos = b
    run.verbatim(pos, j, out)


__all__ = ["render"]
