"""One loaded Kokoro model on onnxruntime: its front and generator (adapters/kokoro/graph.py),
or the whole graph when it does not cut, each in two sessions (both cores for a run alone,
one core each for runs side by side), and the norm statistics the generator's windows share
(adapters/kokoro/norms.py), calibrated per voice and style row on first use.

`start` runs the front for a batch of phonemes; `decode` runs the generator for frames
[start, end) of it with PAD_FRAMES of context; `whole` runs the model as exported, one batch
per run (the reference the windows are measured against, and the path of a graph that does
not cut). Every run takes onnxruntime RunOptions whose `terminate` flag aborts it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adapters.kokoro.graph import STYLE_INPUT, KokoroGraph, cut_model
from adapters.kokoro.norms import NormStats, own_statistics_feeds
from adapters.kokoro.timing import SAMPLES_PER_FRAME
from adapters.kokoro.voices import Style
from adapters.kokoro.windows import WINDOWS, Rate, measure_rate
from adapters.windowed.schedule import own_samples
from adapters.windowed.sessions import Pace, Sessions

SAMPLE_RATE_HZ = 24_000
# The generator's norm statistics depend above all on the style row (the voice's vector for
# the batch's phoneme count) and much less on the text, so they are calibrated per voice at a
# few rows, each by a whole decode of an utterance of about that many phonemes (a prefix of
# these fixed phonemes: Harvard sentences 1-2, espeak-ng en-us), and interpolated in log-row
# between them. Fixed phonemes: a voice's statistics do not depend on the phonemizer or on
# what was asked first. Measured (jf_alpha, jm_kumo; 14 texts of 5-141 phonemes): log-mel
# distance of the windows to the whole decode median 2.6 dB (1.9-6.2), where statistics from
# one 89-phoneme calibration made short utterances 20-60 dB quieter. A calibration costs one
# whole decode of 16-89 phonemes; warmup calibrates the default voice at every row.
CALIBRATION_PHONEMES = (
    "ðə bˈɜːtʃ kənˈuː slˈɪd ɔnðə smˈuːð plˈæŋks. "
    "ɡlˈuː ðə ʃˈiːt tə ðə dˈɑːɹk blˈuː bˈækɡɹaʊnd."
)
CALIBRATION_ROWS = (3, 15, 63, 255)
CALIBRATION_MIN_PHONEMES = 16  # below this an utterance is mostly its pauses
STATS_CACHE = 256  # (voice or blend, row) statistics kept (~90 KB each)


def calibration_phonemes(row: int) -> str:
    """The calibration utterance for a style row: the longest prefix of whole words of
    CALIBRATION_PHONEMES with at most row + 1 phonemes (and at least the minimum)."""
    limit = max(row + 1, CALIBRATION_MIN_PHONEMES)
    out = ""
    for word in CALIBRATION_PHONEMES.split(" "):
        longer = f"{out} {word}" if out else word
        if len(longer) > limit and out:
            break
        out = longer
    return out


@dataclass
class Sentence:
    """One batch on its way through the generator: the front's outputs and the feeds every
    window shares (the style, the voice's norm statistics)."""

    features: np.ndarray
    source: np.ndarray
    durations: np.ndarray  # frames per token, pads included
    shared: dict[str, np.ndarray]
    total: int  # frames (600 samples each)


class KokoroEngine:
    """A model file loaded for windowed decoding (see the module docstring)."""

    def __init__(self, model_path: Path, intra_op_threads: int = 1) -> None:
        import onnxruntime as ort

        self.model_path = model_path
        self._ort = ort
        self._intra = intra_op_threads
        self.pace = Pace()
        graph = cut_model(model_path)
        if graph is not None:
            self.front: Sessions | None = self._sessions(graph.front)
            self.generator: Sessions | None = self._sessions(graph.generator)
            self.whole_graph: Sessions | None = None
            self.tokens_input = graph.tokens
            self.metadata = graph.metadata
            graph = graph.parts_released()  # the sessions hold the parts now (~90 MB)
        else:
            self.front = self.generator = None
            self.whole_graph = self._sessions(str(model_path))
            self.tokens_input = self.whole_graph.inputs[0]
            self.metadata = dict(self.whole_graph.lean.get_modelmeta().custom_metadata_map)
        self.graph: KokoroGraph | None = graph
        self._rates = self._measure_rates() if self.graph is not None else {}
        self._stats: OrderedDict[tuple[str, int], NormStats] = OrderedDict()
        self._stats_lock = threading.Lock()

    @property
    def windowed(self) -> bool:
        return self.graph is not None

    def _sessions(self, model: bytes | str) -> Sessions:
        ort = self._ort

        def session(threads: int) -> Any:
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            return ort.InferenceSession(model, sess_options=so,
                                        providers=["CPUExecutionProvider"])

        lean = session(self._intra)
        return Sessions(session(max(2, self._intra)) if self._intra < 2 else lean, lean)

    # -- feeds

    def feeds(self, ids: list[int], style_row: np.ndarray, speed: float) -> dict[str, Any]:
        return {
            self.tokens_input: np.array([[0, *ids, 0]], dtype=np.int64),
            STYLE_INPUT: np.asarray(style_row, dtype=np.float32).reshape(1, -1),
            "speed": np.array([speed], dtype=np.float32),
        }

    # -- the cut path

    def _measure_rates(self) -> dict[str, Rate]:
        """How the front's features and source run along time, measured on two short inputs
        at load (the shapes say it; no assumption about the export's layout)."""
        assert self.graph is not None and self.front is not None
        g = self.graph
        style = np.zeros((1, 256), dtype=np.float32)
        runs = [self.front.run(False, self.feeds(ids, style, 1.0), None)
                for ids in ([16, 50, 16], [16, 50, 83, 156, 16, 50, 83, 16, 50, 83])]
        frames = [int(np.asarray(r[g.durations]).sum()) for r in runs]
        rates = {}
        for name in (g.features, g.source):
            rate = measure_rate(runs[0][name].shape, frames[0], runs[1][name].shape, frames[1])
            if rate is None:
                raise RuntimeError(f"kokoro: {name} does not run along the frames")
            rates[name] = rate
        return rates

    def start(self, alone: bool, feeds: dict[str, Any], stats: NormStats, stop: Any) -> Sentence:
        """The front over one batch: what every window of it reads."""
        assert self.graph is not None and self.front is not None
        g = self.graph
        made = self.front.run(alone, feeds, stop)
        durations = np.asarray(made[g.durations]).reshape(-1)
        total = int(durations.sum())
        return Sentence(made[g.features], made[g.source], durations,
                        {STYLE_INPUT: feeds[STYLE_INPUT], **stats.feeds()}, total)

    def decode(self, alone: bool, s: Sentence, start: int, end: int, stop: Any) -> np.ndarray:
        """Frames [start, end) of the batch as audio, decoded with their context."""
        assert self.graph is not None and self.generator is not None
        g = self.graph
        rates = self._rates
        lo, hi = WINDOWS.padded(start, end, s.total)
        tensors = {**s.shared,
                   g.features: rates[g.features].slice(s.features, lo, hi),
                   g.source: rates[g.source].slice(s.source, lo, hi)}
        t0 = time.perf_counter()
        audio = self._audio(self.generator.run(alone, tensors, stop, self._audio_output()))
        self.pace.observe(alone, 1000 * (time.perf_counter() - t0), hi - lo)
        return own_samples(audio, start, end, lo, SAMPLES_PER_FRAME)

    def _audio_output(self) -> list[str]:
        assert self.generator is not None
        return [self.generator.outputs[0]]

    @staticmethod
    def _audio(outputs: dict[str, Any]) -> np.ndarray:
        return np.asarray(next(iter(outputs.values())), dtype=np.float32).reshape(-1)

    # -- norm statistics per voice

    def stats(self, style: Style, tokens: int, alone: bool, ids: Callable[[str], list[int]],
              stop: Any) -> NormStats:
        """Norm statistics for a batch of `tokens` phonemes in `style`: interpolated between
        the two calibrated rows around its style row (each calibrated on first use)."""
        row = max(tokens, 1) - 1
        below = max((r for r in CALIBRATION_ROWS if r <= row), default=CALIBRATION_ROWS[0])
        above = min((r for r in CALIBRATION_ROWS if r >= row), default=CALIBRATION_ROWS[-1])
        low = self._calibrated(style, below, alone, ids, stop)
        if above == below:
            return low
        t = (np.log1p(row) - np.log1p(below)) / (np.log1p(above) - np.log1p(below))
        return low.towards(self._calibrated(style, above, alone, ids, stop), float(t))

    def _calibrated(self, style: Style, row: int, alone: bool,
                    ids: Callable[[str], list[int]], stop: Any) -> NormStats:
        key = (style.id, row)
        with self._stats_lock:
            found = self._stats.get(key)
            if found is not None:
                self._stats.move_to_end(key)
                return found
        assert self.graph is not None and self.front is not None
        assert self.generator is not None
        tokens = ids(calibration_phonemes(row))
        feeds = self.feeds(tokens, np.asarray(style.table[row]), 1.0)
        g = self.graph
        made = self.front.run(alone, feeds, stop)
        tensors = {**made, STYLE_INPUT: feeds[STYLE_INPUT], **own_statistics_feeds(g.norms)}
        found = NormStats.from_outputs(self.generator.run(alone, tensors, stop), g.norms)
        with self._stats_lock:
            self._stats[key] = found
            while len(self._stats) > STATS_CACHE:
                self._stats.popitem(last=False)
        return found

    def calibrated(self, style_id: str) -> list[int]:
        """The rows calibrated for a voice so far."""
        with self._stats_lock:
            return sorted(row for sid, row in self._stats if sid == style_id)

    # -- the whole graph

    def whole(self, alone: bool, feeds: dict[str, Any], stop: Any) -> tuple[np.ndarray,
                                                                        np.ndarray | None]:
        """A batch as the model makes it in one run (each norm over the whole batch), and
        its durations when the cut exposes them."""
        if self.graph is None:
            assert self.whole_graph is not None
            return self._audio(self.whole_graph.run(alone, feeds, stop)), None
        assert self.front is not None and self.generator is not None
        g = self.graph
        made = self.front.run(alone, feeds, stop)
        tensors = {**made, STYLE_INPUT: feeds[STYLE_INPUT], **own_statistics_feeds(g.norms)}
        audio = self._audio(self.generator.run(alone, tensors, stop, self._audio_output()))
        return audio, np.asarray(made[g.durations]).reshape(-1)


__all__ = ["CALIBRATION_PHONEMES", "CALIBRATION_ROWS", "SAMPLE_RATE_HZ", "KokoroEngine", "Pace",
           "Sentence", "Sessions", "calibration_phonemes"]
