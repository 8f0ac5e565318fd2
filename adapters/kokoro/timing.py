"""Exact word timings from Kokoro's predicted durations.

The front outputs each token's frames (the duration predictor's rounded output, exposed by the
cut): tokens are `[pad, phoneme..., pad]` and one frame is 600 samples, so phoneme i sounds
from `600 * sum(d[:i+1])` to `600 * sum(d[:i+2])` samples, and the frames add up to the audio
exactly.

Phonemes map to text words through espeak's word spaces. Text words and spoken words differ
("$3.50" is several spoken words), so each text word is phonemized alone to learn how many
spoken words it makes; when the counts do not add up for a segment (context changed the
reading), its words are left to the orchestrator's estimate rather than guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adapters.base import WordTiming
from adapters.windowed.words import assign_words, place_words
from adapters.windowed.words import spoken_words as shared_spoken_words

SAMPLES_PER_FRAME = 600  # one predictor frame at 24 kHz (iSTFTNet: 10 x 6 upsampling, hop 5)
PUNCTUATION = frozenset(';:,.!?—…"()“”«»¡¿')  # pauses, not parts of a word's sound


def spoken_words(phonemes: str) -> list[list[int]]:
    """Indexes of each spoken word's sounding phonemes (spaces and punctuation left out)."""
    return shared_spoken_words(phonemes, PUNCTUATION)


@dataclass(frozen=True)
class WordPlan:
    """Which text words each batch speaks, and how many spoken words each text word is."""

    batches: list[list[tuple[str, int]]]


def plan_words(words: Sequence[str], counts: Sequence[int],
               batches: Sequence[str]) -> WordPlan | None:
    """Assign text words (each making `counts[i]` spoken words) to the batches' spoken
    words, or None when they disagree or a text word would straddle two batches."""
    plan = assign_words(words, counts, [len(spoken_words(b)) for b in batches])
    return None if plan is None else WordPlan(plan)


def batch_timings(planned: Sequence[tuple[str, int]], phonemes: str, durations: np.ndarray, *,
                  offset_samples: int, rate_hz: int) -> tuple[WordTiming, ...] | None:
    """Word timings of one batch from its tokens' frames (pads included), `offset_samples`
    into the segment; None when the durations do not match the phonemes."""
    frames = np.asarray(durations, dtype=np.int64).reshape(-1)
    if len(frames) != len(phonemes) + 2:
        return None
    ends = [int(e) for e in np.cumsum(frames) * SAMPLES_PER_FRAME]  # end of token i
    spans = [(ends[i], ends[i + 1]) for i in range(len(phonemes))]  # phoneme i is token i + 1
    return place_words(planned, spoken_words(phonemes), spans, offset_samples=offset_samples,
                       rate_hz=rate_hz)


__all__ = [
    "PUNCTUATION",
    "SAMPLES_PER_FRAME",
    "WordPlan",
    "batch_timings",
    "plan_words",
    "spoken_words",
]
