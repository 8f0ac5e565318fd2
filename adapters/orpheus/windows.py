"""Streaming SNAC decode without loss: frames in, overlapping decode windows planned so that
every emitted sample was decoded with enough context on both sides, PCM out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adapters.orpheus.tokens import CODEBOOK_SIZE, SAMPLES_PER_FRAME, TOKENS_PER_FRAME
from dsp.pcm import float_to_pcm16


@dataclass(frozen=True)
class Window:
    """One decode a stream needs: `frames` [T, 7] (int64) starting at stream frame `first`;
    of the T * 2048 samples they decode to, stream samples [emit_from, emit_to) are new audio,
    the rest is context (left of emit_from, right of emit_to)."""

    frames: np.ndarray
    first: int
    emit_from: int
    emit_to: int

    @property
    def length(self) -> int:
        """Frames decoded."""
        return int(self.frames.shape[0])

    @property
    def new_samples(self) -> int:
        return self.emit_to - self.emit_from


class StreamingSnacDecoder:
    """Frames in, s16le 24 kHz PCM out: F frames always give exactly F * 2048 samples.

    Each decode runs SNAC over a window of frames and keeps only the samples that had enough
    context on both sides: `kept_slice=(start, end)` (in samples of a `window_frames` window)
    means `start` samples of left context and `window_frames*2048 - end` of right context.
    The default (2048, 4096) of a 4-frame window is Orpheus' own scheme: one new frame per
    4-frame window. Asking for more new frames per decode (`plan(max_frames=n)` once `n`
    frames are ready) keeps the same left context and lookahead around a wider window: 3 new
    frames decode a 6-frame window, half the frames decoded per new frame. Where the stream
    itself begins or ends there is no missing context, so the first frame is emitted as soon
    as its right context exists and `flush()` emits the tail. When frames pile up (the token
    source runs ahead of decoding) one window covers them all, up to `max_window_frames`.
    `start_lookahead_frames` lets the first decode wait for fewer frames of right context.

    Two ways to run it: `decode_ready()`/`flush()` decode in place with `model` (a torch SNAC
    or any `SnacRunner`; blocking); or `plan()`/`plan_flush()` hand out the next `Window`, to
    be decoded elsewhere (a shared worker, batched with other streams) and given back to
    `complete()`, one window at a time. Not thread-safe.
    """

    def __init__(
        self,
        model: Any = None,
        *,
        window_frames: int = 4,
        kept_slice: tuple[int, int] = (SAMPLES_PER_FRAME, 2 * SAMPLES_PER_FRAME),
        max_window_frames: int = 16,
        start_lookahead_frames: int | None = None,
    ) -> None:
        start, end = kept_slice
        if window_frames < 1 or not 0 <= start < end <= window_frames * SAMPLES_PER_FRAME:
            raise ValueError(f"kept_slice {kept_slice} does not fit a {window_frames}-frame window")
        self._runner = as_runner(model) if model is not None else None
        self._left_samples = start
        self._right_samples = window_frames * SAMPLES_PER_FRAME - end
        # One frame more than the base window guarantees progress at any sample alignment.
        self._max_window = max(max_window_frames, window_frames + 1)
        self._start_lookahead = (self._right_samples if start_lookahead_frames is None
                                 else min(self._right_samples,
                                          max(0, start_lookahead_frames) * SAMPLES_PER_FRAME))
        self._frames: list[Sequence[int]] = []  # frames from index self._base on
        self._base = 0
        self._received = 0
        self._emitted_samples = 0
        self.decode_calls = 0

    @property
    def frames_received(self) -> int:
        return self._received

    @property
    def samples_emitted(self) -> int:
        return self._emitted_samples

    @property
    def ready_samples(self) -> int:
        """Samples the next `plan()` can emit now (they have their full right context)."""
        return max(0, self._received * SAMPLES_PER_FRAME - self._lookahead()
                   - self._emitted_samples)

    @property
    def pending_samples(self) -> int:
        """Samples received but not emitted yet (what `flush()` would still emit)."""
        return self._received * SAMPLES_PER_FRAME - self._emitted_samples

    def _lookahead(self) -> int:
        # The first decode may look ahead less than the rest (low latency): a little less
        # exact audio near the end of the first frame(s) for audio sooner.
        return self._start_lookahead if self._emitted_samples == 0 else self._right_samples

    def push(self, frame: Sequence[int]) -> None:
        if len(frame) != TOKENS_PER_FRAME or not all(0 <= c < CODEBOOK_SIZE for c in frame):
            raise ValueError(f"not a SNAC frame: {frame!r}")
        self._frames.append(frame)
        self._received += 1

    def plan(self, max_frames: int | None = None) -> Window | None:
        """The window that emits what has full context now (at most `max_frames` frames'
        worth of new samples); None when nothing is ready."""
        lookahead = self._lookahead()
        target = self._received * SAMPLES_PER_FRAME - lookahead
        if max_frames is not None:
            target = min(target, self._emitted_samples + max_frames * SAMPLES_PER_FRAME)
        return self._window(target, lookahead)

    def plan_flush(self) -> Window | None:
        """End of stream: the next window of the tail (no lookahead left to wait for)."""
        return self._window(self._received * SAMPLES_PER_FRAME, 0)

    def complete(self, window: Window, audio: np.ndarray) -> bytes:
        """`audio` is `window.frames` decoded (float, window.length * 2048 samples): emit the
        window's new samples as s16le PCM."""
        if window.emit_from != self._emitted_samples:
            raise ValueError("windows must be completed one at a time, in the order planned")
        if audio.shape[-1] != window.length * SAMPLES_PER_FRAME:
            raise RuntimeError(f"SNAC returned {audio.shape[-1]} samples for "
                               f"{window.length} frames")
        offset = window.first * SAMPLES_PER_FRAME
        pcm = float_to_pcm16(audio[window.emit_from - offset : window.emit_to - offset])
        self._emitted_samples = window.emit_to
        self.decode_calls += 1
        self._trim()
        return pcm

    def decode_ready(self, max_frames: int | None = None) -> bytes:
        """Decode in place (one model call) what has full context; at most `max_frames` frames."""
        window = self.plan(max_frames)
        return b"" if window is None else self._decode_now(window)

    def flush(self) -> bytes:
        """End of stream, in place: emit every remaining sample (several calls if many remain)."""
        out = bytearray()
        while (window := self.plan_flush()) is not None:
            out += self._decode_now(window)
        return bytes(out)

    def _decode_now(self, window: Window) -> bytes:
        if self._runner is None:
            raise RuntimeError("this decoder has no model: decode its windows elsewhere")
        return self.complete(window, self._runner.decode(window.frames[None])[0])

    def _window(self, target: int, lookahead: int) -> Window | None:
        """The window that emits samples up to `target`, `lookahead` samples past it decoded."""
        emitted = self._emitted_samples
        if target <= emitted:
            return None
        first = max(0, (emitted - self._left_samples) // SAMPLES_PER_FRAME)
        last = min(self._received, math.ceil((target + lookahead) / SAMPLES_PER_FRAME))
        if last - first > self._max_window:
            last = first + self._max_window
            target = min(target, last * SAMPLES_PER_FRAME - self._right_samples)
        frames = np.asarray(self._frames[first - self._base : last - self._base], dtype=np.int64)
        return Window(frames, first, emitted, target)

    def _trim(self) -> None:
        keep_from = max(0, (self._emitted_samples - self._left_samples) // SAMPLES_PER_FRAME)
        if keep_from > self._base:
            del self._frames[: keep_from - self._base]
            self._base = keep_from


def as_runner(model: Any) -> Any:
    """A `SnacRunner` (adapters/orpheus/runtime.py) as given, or a torch SNAC wrapped in one."""
    if getattr(model, "kind", None) in ("torch", "onnx"):
        return model
    from adapters.orpheus.runtime import TorchSnac

    return TorchSnac(model)


__all__ = ["StreamingSnacDecoder", "Window", "as_runner"]
