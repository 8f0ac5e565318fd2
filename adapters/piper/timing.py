"""Exact word timings from a Piper voice, without a retrained model.

A Piper VITS graph computes each phoneme id's duration in frames before its decoder: the
length regulator rounds them up (one `Ceil`) and feeds them to a ReduceSum (total frames) and a
CumSum (where each id ends). `with_durations_output` finds that tensor by this structure, not
by name, and exposes it as an extra output of the model loaded into onnxruntime; frames times
the hop length (256 samples) equal the audio exactly. A voice whose graph differs gets None and
the orchestrator estimates its timings instead.

Phonemes map to words through espeak's word separators (" " phonemes). Text words and espeak's
words differ ("$3.50" is four spoken words), so each text word is phonemized alone to learn how
many spoken words it makes; when the counts do not add up for a segment (context changed the
reading), its words are left to the estimate rather than guessed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adapters.base import WordTiming
from adapters.windowed.words import assign_words, place_words
from adapters.windowed.words import spoken_words as shared_spoken_words

BOS, EOS, PAD, SPACE = "^", "$", "_", " "
PUNCTUATION = frozenset(".,;:!?¡¿—…\"«»“”()-'")  # pauses, not parts of a word's sound
DURATIONS_OUTPUT = "morpheus_durations"


def find_durations_tensor(graph: object) -> str | None:
    """The length regulator's rounded durations: a Ceil output read by ReduceSum and CumSum."""
    consumers: dict[str, set[str]] = {}
    for node in graph.node:  # type: ignore[attr-defined]
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    found = [node.output[0] for node in graph.node  # type: ignore[attr-defined]
             if node.op_type == "Ceil"
             and {"ReduceSum", "CumSum"} <= consumers.get(node.output[0], set())]
    return found[0] if len(found) == 1 else None


def with_durations_output(model_path: str | Path) -> bytes | None:
    """The voice's ONNX with its per-phoneme-id frame counts as an extra output (serialized),
    or None when the graph has no recognisable length regulator."""
    import onnx

    model = onnx.load(str(model_path))
    tensor = find_durations_tensor(model.graph)
    if tensor is None:
        return None
    if not any(out.name == tensor for out in model.graph.output):
        # An Identity gives the output a name of ours whatever the tensor was called.
        model.graph.node.append(onnx.helper.make_node("Identity", [tensor], [DURATIONS_OUTPUT]))
        info = onnx.ValueInfoProto()
        info.name = DURATIONS_OUTPUT
        model.graph.output.append(info)
    return model.SerializeToString()


# ------------------------------------------------------------------------------ phonemes -> words


def spoken_words(phonemes: Sequence[str]) -> list[list[int]]:
    """Indexes of each spoken word's sounding phonemes (punctuation and spaces left out)."""
    return shared_spoken_words(phonemes, PUNCTUATION, SPACE)


@dataclass(frozen=True)
class WordPlan:
    """Which text words each phonemized sentence speaks, and how many spoken words each is."""

    sentences: list[list[tuple[str, int]]]  # per sentence: (text word, its spoken words)


def plan_words(text: str, sentences: Sequence[Sequence[str]],
               spoken_count: Callable[[str], int]) -> WordPlan | None:
    """Assign the text's words to the sentences' spoken words, or None when they disagree.
    `spoken_count(word)`: how many spoken words the word makes when phonemized alone."""
    counts = [spoken_count(word) for word in text.split()]
    plan = assign_words(text.split(), counts, [len(spoken_words(s)) for s in sentences])
    return None if plan is None else WordPlan(plan)


def spoken_count(word: str, phonemize: Callable[[str], list[list[str]]]) -> int:
    """How many spoken words `word` makes on its own ("$3.50": four)."""
    return sum(len(spoken_words(s)) for s in phonemize(word))


def sentence_timings(planned: Sequence[tuple[str, int]], phonemes: Sequence[str],
                     id_samples: np.ndarray, id_map: dict[str, list[int]], *,
                     offset_samples: int, rate_hz: int) -> tuple[WordTiming, ...] | None:
    """Word timings of one sentence from its ids' sample counts, `offset_samples` into the
    segment; None when the ids do not follow the phonemes (an unexpected id layout)."""
    spans = _phoneme_spans(phonemes, id_samples, id_map)
    if spans is None:
        return None
    return place_words(planned, spoken_words(phonemes), spans, offset_samples=offset_samples,
                       rate_hz=rate_hz)


def _phoneme_spans(phonemes: Sequence[str], id_samples: np.ndarray,
                   id_map: dict[str, list[int]]) -> list[tuple[int, int]] | None:
    """[start, end) in samples of each phoneme (its ids and the PAD after it), as Piper lays
    ids out: BOS PAD, then each phoneme's ids and a PAD, then EOS."""
    pad = id_map.get(PAD, [])
    ends = np.cumsum(id_samples)
    spans: list[tuple[int, int]] = []
    i = 0
    for n, phoneme in enumerate(itertools.chain([BOS], phonemes, [EOS])):
        width = len(id_map.get(phoneme, [])) + (len(pad) if phoneme != EOS else 0)
        if i + width > len(id_samples):
            return None
        start = int(ends[i - 1]) if i else 0
        i += width
        if 0 < n <= len(phonemes):
            spans.append((start, int(ends[i - 1])))
    return spans if i == len(id_samples) else None


__all__ = [
    "DURATIONS_OUTPUT",
    "WordPlan",
    "find_durations_tensor",
    "plan_words",
    "sentence_timings",
    "spoken_count",
    "spoken_words",
    "with_durations_output",
]
