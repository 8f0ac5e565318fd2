"""One SNAC decoder worker per device, shared by every Orpheus stream.

Streams hand it their ready windows (`await worker.decode(frames)`); its thread decodes what
is waiting. With `batch=True` (a GPU, where one call over many windows costs about what one
window costs) it takes every waiting window, groups them by length and decodes each group in
one batched call; with `batch=False` (a CPU, where batching gains nothing: measured) it decodes
one window at a time, oldest first, on `lanes` threads (one per core, each decoding on one
core: measured on 2 cores, 28% more frames per second than one decode on two threads, which
wait on each other inside every layer). It never waits for company: a lone stream's window is
decoded the moment a lane is free. A cancelled stream's windows are dropped before they are
decoded (and a result for a stream that went away meanwhile is discarded).

The queue is bounded (`max_waiting`); a stream has at most one window in flight, so the bound
is only reached by more streams than the worker was sized for, and they then wait their turn.
`stats()` is a snapshot for metrics: decode time per frame, frames per window, batch sizes,
windows waiting.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adapters.errors import BackendUnavailable, EngineError

log = logging.getLogger("morpheus.snac.worker")

EWMA = 0.1  # weight of the newest batch in the recent averages


@dataclass
class _Job:
    frames: np.ndarray  # [T, 7]
    new_frames: float  # frames of new audio it yields (the rest is context)
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[np.ndarray]
    queued_at: float = field(default_factory=time.perf_counter)
    dropped: bool = False  # the stream went away: never decode it


@dataclass
class DecoderStats:
    """Totals since start, plus recent averages (EWMA) and what is waiting now."""

    device: str
    kind: str  # "torch" or "onnx"
    batching: bool
    lanes: int = 1
    windows: int = 0
    batches: int = 0  # model calls
    frames_decoded: int = 0
    frames_new: float = 0.0  # frames of new audio among them
    decode_s: float = 0.0  # time in the model
    wait_s: float = 0.0  # time windows spent queued
    dropped: int = 0  # windows of cancelled streams, never decoded
    waiting: int = 0  # windows queued now
    recent_ms_per_frame: float = 0.0
    recent_frames_per_window: float = 0.0
    recent_batch_size: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class DecodeWorker:
    """A thread that decodes SNAC windows for every stream of one model (see module doc)."""

    def __init__(self, runner: Any, *, batch: bool, lanes: int = 1, max_batch: int = 16,
                 max_waiting: int = 256, backend: str = "snac_llamacpp") -> None:
        self.runner = runner
        self.backend = backend
        self.batch = batch
        self.lanes = 1 if batch else max(1, lanes)  # batching wants every window in one place
        self.max_batch = max(1, max_batch)
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._slots = asyncio.Semaphore(max_waiting) if max_waiting > 0 else None
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._stats = DecoderStats(device=runner.device, kind=runner.kind, batching=batch,
                                   lanes=self.lanes)

    async def decode(self, frames: np.ndarray, *, new_frames: float | None = None) -> np.ndarray:
        """Decode one window (`frames` [T, 7]) -> float32 [T * 2048]; cancel to drop it."""
        if self._closed:
            raise BackendUnavailable("the SNAC decoder is closed", backend=self.backend)
        loop = asyncio.get_running_loop()
        if self._slots is not None:
            await self._slots.acquire()
        try:
            job = _Job(frames, float(frames.shape[0] if new_frames is None else new_frames),
                       loop, loop.create_future())
            self._start()
            with self._cond:
                self._jobs.append(job)
                self._cond.notify()
            try:
                return await job.future
            finally:
                job.dropped = True  # cancelled while queued: never decode it (no-op if done)
        finally:
            if self._slots is not None:
                self._slots.release()

    @property
    def waiting(self) -> int:
        """Windows queued now (not counting the ones being decoded)."""
        return len(self._jobs)

    def frames_within(self, ms: float) -> int | None:
        """How many frames one window can hold and still decode within `ms`, at the recent
        pace (None before the first decode)."""
        per_frame = self._stats.recent_ms_per_frame
        return int(ms / per_frame) if per_frame > 0 else None

    def stats(self) -> DecoderStats:
        with self._cond:
            snapshot = DecoderStats(**self._stats.as_dict())
            snapshot.waiting = len(self._jobs)
        return snapshot

    async def aclose(self) -> None:
        with self._cond:
            self._closed = True
            for job in self._jobs:
                job.dropped = True
                job.loop.call_soon_threadsafe(_fail, job.future, BackendUnavailable(
                    "the SNAC decoder is closed", backend=self.backend))
            self._jobs.clear()
            self._cond.notify_all()
        threads, self._threads = self._threads, []
        for thread in threads:
            await asyncio.to_thread(thread.join)

    # -- the thread

    def _start(self) -> None:
        if not self._threads:
            self._threads = [threading.Thread(target=self._run, name=f"snac-decoder-{i}",
                                              daemon=True) for i in range(self.lanes)]
            for thread in self._threads:
                thread.start()

    def _take(self) -> list[_Job] | None:
        """The next jobs to decode together (all of one length), or None once closed."""
        with self._cond:
            while True:
                while self._jobs and self._jobs[0].dropped:
                    self._jobs.popleft()
                    self._stats.dropped += 1
                if self._jobs:
                    break
                if self._closed:
                    return None
                self._cond.wait()
            first = self._jobs.popleft()
            taken = [first]
            if self.batch:
                length = first.frames.shape[0]
                keep: deque[_Job] = deque()
                while self._jobs:
                    job = self._jobs.popleft()
                    if job.dropped:
                        self._stats.dropped += 1
                    elif job.frames.shape[0] == length and len(taken) < self.max_batch:
                        taken.append(job)
                    else:
                        keep.append(job)
                self._jobs = keep
            return taken

    def _run(self) -> None:
        while (jobs := self._take()) is not None:
            started = time.perf_counter()
            try:
                audio = self.runner.decode(np.stack([j.frames for j in jobs]))
            except Exception as e:  # torch and onnxruntime raise several kinds; each stream gets it
                log.warning("SNAC decode failed: %s", e)
                error = EngineError(f"SNAC decode failed: {e}", backend=self.backend)
                error.__cause__ = e
                for job in jobs:
                    job.loop.call_soon_threadsafe(_fail, job.future, error)
                continue
            elapsed = time.perf_counter() - started
            self._account(jobs, started, elapsed)
            for job, row in zip(jobs, audio, strict=True):
                job.loop.call_soon_threadsafe(_resolve, job.future, row)

    def _account(self, jobs: list[_Job], started: float, elapsed: float) -> None:
        frames = sum(j.frames.shape[0] for j in jobs)
        with self._cond:
            s = self._stats
            s.windows += len(jobs)
            s.batches += 1
            s.frames_decoded += frames
            s.frames_new += sum(j.new_frames for j in jobs)
            s.decode_s += elapsed
            s.wait_s += sum(started - j.queued_at for j in jobs)
            a = EWMA if s.batches > 1 else 1.0
            s.recent_ms_per_frame += a * (1000 * elapsed / frames - s.recent_ms_per_frame)
            s.recent_frames_per_window += a * (frames / len(jobs) - s.recent_frames_per_window)
            s.recent_batch_size += a * (len(jobs) - s.recent_batch_size)


def _resolve(future: asyncio.Future[np.ndarray], audio: np.ndarray) -> None:
    if not future.done():
        future.set_result(audio)


def _fail(future: asyncio.Future[np.ndarray], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


__all__ = ["DecodeWorker", "DecoderStats"]
