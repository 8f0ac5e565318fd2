"""A Piper voice's onnxruntime sessions: the whole graph, or its three parts run step by step
for one sentence (adapters/piper/split.py says where the graph is cut and why).

Memory (the joe medium voice, measured): each session set holds its copy of the weights (~75
MB), and each session would hold a CPU arena of its own that keeps the largest run it ever made
(a decoder window of 272 frames needs ~75 MB, a whole sentence ~160 MB). So every session
draws on one process-wide arena instead (`shared_arena`): it holds what the runs in flight at
once need, not what each of six sessions once needed, and a run at the end of the warm-up and
after every idle spell hands it back (`release_arena`), so an idle server holds the weights,
not the runs.
(Sharing the weights between the sets through `add_initializer` breaks the front:
onnxruntime's fusions reshape some of them.)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adapters.piper.split import FLOW_PAD_FRAMES, WINDOWS, SplitModel, flow_frames
from adapters.windowed.schedule import own_samples
from adapters.windowed.sessions import Pace, Sessions

_arena_lock = threading.Lock()
_arena_registered = False


def shared_arena(ort: Any) -> None:
    """Register one CPU arena with onnxruntime's environment, once per process: sessions that
    set `session.use_env_allocators` draw on it instead of an arena each. (It grows by powers
    of two, whose untouched tails cost address space, not memory: ~70 MB less RSS under load
    than growing by what each run asks for, measured.)"""
    global _arena_registered
    with _arena_lock:
        if _arena_registered:
            return
        memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                   ort.OrtMemType.DEFAULT)
        try:
            ort.create_and_register_allocator(memory, ort.OrtArenaCfg({}))
        except Exception:  # another user of onnxruntime in this process registered one first
            pass
        _arena_registered = True


def release_arena(run_options: Any) -> None:
    """Make the runs given `run_options` hand the shared arena's regions that nothing uses any
    more back to the OS when they end: for the last run before the engine goes idle."""
    run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")


def open_sessions(model: bytes | str, intra_op_threads: int) -> Sessions:
    """The model's `Sessions`: a two-thread one for runs alone when `intra_op_threads` is 1,
    besides the lean one; both on the shared arena."""
    import onnxruntime as ort

    shared_arena(ort)

    def session(threads: int) -> Any:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.use_env_allocators", "1")
        made = ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])
        # onnxruntime's Python wrapper keeps the bytes it was built from (its own TODO calls
        # that "bad as we're holding the memory indefinitely"); it reads them again only to
        # fall back from a failed accelerator provider, which a CPU-only session never does.
        if getattr(made, "_model_bytes", None) is not None:
            made._model_bytes = None
        return made

    lean = session(intra_op_threads)
    return Sessions(session(2) if intra_op_threads < 2 else lean, lean)


def first_output(outputs: dict[str, Any]) -> np.ndarray:
    """A graph's audio: its first output, as one flat array."""
    return np.asarray(next(iter(outputs.values()))).reshape(-1)


@dataclass
class Sentence:
    """One sentence on its way through the parts: what the front made, and the latent frames
    known so far (the first window's, then all)."""

    tensors: dict[str, Any]  # the feeds and the front's outputs, by name
    total: int  # latent frames (256 samples each)
    latent: Any = None
    known: int = 0  # frames of `latent` that are final
    durations: np.ndarray | None = field(default=None)  # frames per phoneme id


@dataclass(frozen=True)
class SplitSessions:
    """The front, flow and decoder of a voice cut in three (the flow may be part of the
    front), each as a `Sessions` pair."""

    model: SplitModel
    front: Sessions
    flow: Sessions | None
    decoder: Sessions
    pace: Pace = field(default_factory=Pace)

    def start(self, alone: bool, feeds: dict[str, Any], stop: Any) -> Sentence:
        """Run the front: durations and the flow's inputs (or the latent) for the sentence."""
        made = self.front.run(alone, feeds, stop)
        m = self.model
        durations = made.get(m.durations) if m.durations else None
        tensors = {**feeds, **made}
        if self.flow is None:
            latent = tensors[m.latent]
            return Sentence(tensors, latent.shape[-1], latent, latent.shape[-1], durations)
        return Sentence(tensors, tensors[m.flow_inputs[0]].shape[-1], durations=durations)

    def decode(self, alone: bool, s: Sentence, start: int, end: int, hop: int,
               stop: Any) -> np.ndarray:
        """Frames [start, end) of the sentence as audio: the flow first where the latent is
        not yet known that far (only as far as the first window needs, then all of it)."""
        lo, hi = WINDOWS.padded(start, end, s.total)
        if s.known < hi and self.flow is not None:
            frames = flow_frames(end, s.total) if start == 0 else s.total
            s.latent = self._flow(alone, s, frames, stop)
            # the last frames of a partial flow lack their context: only those before it hold
            s.known = s.total if frames == s.total else frames - FLOW_PAD_FRAMES
        feeds = {**s.tensors, self.model.latent: s.latent[..., lo:hi]}
        t0 = time.perf_counter()
        audio = first_output(self.decoder.run(alone, feeds, stop))
        self.pace.observe(alone, 1000 * (time.perf_counter() - t0), hi - lo)
        return own_samples(audio, start, end, lo, hop)

    def _flow(self, alone: bool, s: Sentence, frames: int, stop: Any) -> Any:
        assert self.flow is not None
        cut = {name: _first_frames(s.tensors[name], frames, s.total)
               for name in self.model.flow_inputs}
        return self.flow.run(alone, {**s.tensors, **cut}, stop)[self.model.latent]


def _first_frames(tensor: Any, frames: int, total: int) -> Any:
    """A frame-axis tensor ([batch, channels, frames]) cut to its first `frames`; others as
    they are (a speaker embedding has no frame axis)."""
    if getattr(tensor, "ndim", 0) == 3 and tensor.shape[-1] == total:
        return tensor[..., :frames]
    return tensor


__all__ = ["Sentence", "Sessions", "SplitSessions", "first_output", "open_sessions",
           "release_arena", "shared_arena"]
