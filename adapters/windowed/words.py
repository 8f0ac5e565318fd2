"""Text words onto an engine's phonemes: which phonemes make each spoken word, and which text
words each phonemized group (a sentence, a batch) speaks; the engines turn those into exact
timings from their predicted durations."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from adapters.base import WordTiming


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


def place_words(planned: Sequence[tuple[str, int]], spoken: Sequence[Sequence[int]],
                spans: Sequence[tuple[int, int]], *, offset_samples: int,
                rate_hz: int) -> tuple[WordTiming, ...]:
    """Timings of the `planned` words (text word, spoken words it makes) from the samples
    each phoneme spans (`spans[i]`, from the group's start), `offset_samples` into the
    segment. `spoken`: the group's spoken words as phoneme indexes. A word that makes no
    sound stands at a point where the words before it end."""
    out: list[WordTiming] = []
    k = 0
    cursor = offset_samples + (spans[spoken[0][0]][0] if spoken else 0)
    for word, n in planned:
        if n == 0:
            out.append(_timing(word, cursor, cursor, rate_hz))
            continue
        group = spoken[k:k + n]
        k += n
        start = offset_samples + spans[group[0][0]][0]
        end = offset_samples + spans[group[-1][-1]][1]
        out.append(_timing(word, start, end, rate_hz))
        cursor = end
    return tuple(out)


def _timing(word: str, start: int, end: int, rate_hz: int) -> WordTiming:
    return WordTiming(word, 1000.0 * start / rate_hz, 1000.0 * end / rate_hz)


__all__ = ["assign_words", "place_words", "spoken_words"]
