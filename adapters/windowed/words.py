"""Text words onto an engine's phonemes: which phonemes make each spoken word, and which text
words each phonemized group (a sentence, a batch) speaks; the engines turn those into exact
timings from their predicted durations."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def spoken_words(phonemes: Sequence[str], punctuation: Collection[str],
                 space: str = " ") -> list[list[int]]:
    """Indexes of each spoken word's sounding phonemes (spaces and `punctuation`, which are
    pauses and not parts of a word's sound, left out)."""
    words: list[list[int]] = []
    current: list[int] = []
    for i, p in enumerate(phonemes):
        if p == space:
            if current:
                words.append(current)
            current = []
        elif p not in punctuation:
            current.append(i)
    if current:
        words.append(current)
    return words


def assign_words(words: Sequence[str], counts: Sequence[int],
                 per_group: Sequence[int]) -> list[list[tuple[str, int]]] | None:
    """Text words (word i makes `counts[i]` spoken words) onto groups of `per_group[g]`
    spoken words, in order; None when the totals disagree or a text word would straddle two
    groups. Words that make no sound ("&", "-") past the last group trail it."""
    if sum(counts) != sum(per_group):
        return None
    pending = iter(zip(words, counts, strict=True))
    plan: list[list[tuple[str, int]]] = []
    for need in per_group:
        taken: list[tuple[str, int]] = []
        while need > 0:
            word, n = next(pending)
            taken.append((word, n))
            need -= n
        if need < 0:
            return None
        plan.append(taken)
    if plan:
        plan[-1].extend(pending)
    return plan


__all__ = ["assign_words", "spoken_words"]
