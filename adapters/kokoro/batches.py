"""A segment's phonemes cut into batches Kokoro takes in one pass (at most 510 phonemes: its
ALBERT has 512 positions, two of them the pads around the tokens).

Cuts go where the speech pauses anyway: after a sentence's end, else after a clause, else
between words; a run of phonemes longer than a batch with no space in it (no such word exists
in practice) is cut where it must. The batches are balanced rather than filled: a short last
batch is spoken at a different pace and loudness than its neighbours, so the smallest limit
that needs no more batches than filling does is used.
"""

from __future__ import annotations

import re

MAX_PHONEMES = 510
SENTENCE_MARKS = ".!?…"
CLAUSE_MARKS = ",;:—"
_CUTS = (
    re.compile(rf"(?<=[{re.escape(SENTENCE_MARKS)}]) +"),
    re.compile(rf"(?<=[{re.escape(CLAUSE_MARKS)}]) +"),
    re.compile(r" +"),
)


def split_phonemes(phonemes: str, limit: int = MAX_PHONEMES) -> list[str]:
    """`phonemes` as consecutive batches of at most `limit` symbols; joined with single
    spaces they give `phonemes` back (single-spaced input)."""
    phonemes = phonemes.strip()
    if not phonemes:
        return []
    pieces = list(_pieces(phonemes, limit, 0))
    lengths = [len(p) for p in pieces]
    fewest = len(_pack(lengths, limit))
    low, high = max(lengths), limit
    while low < high:  # the smallest limit that still needs only `fewest` batches
        middle = (low + high) // 2
        if len(_pack(lengths, middle)) <= fewest:
            high = middle
        else:
            low = middle + 1
    return [" ".join(pieces[a:b]) for a, b in _pack(lengths, low)]


def _pieces(text: str, limit: int, level: int):
    """Pieces of at most `limit` symbols, cut at the least disruptive places first."""
    if len(text) <= limit:
        yield text
        return
    for index in range(level, len(_CUTS)):
        parts = [p for p in _CUTS[index].split(text) if p]
        if len(parts) > 1:
            for part in parts:
                yield from _pieces(part, limit, index + 1)
            return
    for start in range(0, len(text), limit):  # one unbroken run: cut it where it must be
        yield text[start:start + limit]


def _pack(lengths: list[int], limit: int) -> list[tuple[int, int]]:
    """Consecutive pieces grouped into batches of at most `limit` (a space between pieces)."""
    batches: list[tuple[int, int]] = []
    start, size = 0, 0
    for index, length in enumerate(lengths):
        grown = length if index == start else size + 1 + length
        if grown > limit and index > start:
            batches.append((start, index))
            start, size = index, length
        else:
            size = grown
    batches.append((start, len(lengths)))
    return batches


__all__ = ["CLAUSE_MARKS", "MAX_PHONEMES", "SENTENCE_MARKS", "split_phonemes"]
