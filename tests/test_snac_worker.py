"""adapters/snac_worker.py: one decoder thread shared by every stream; batching, fairness,
cancellation, errors, and the batched torch path against one-by-one decodes."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from adapters.errors import BackendUnavailable, EngineError
from adapters.orpheus.tokens import SAMPLES_PER_FRAME
from adapters.orpheus.worker import DecodeWorker
from tests.extras import torch_or_skip
from tests.snac_fixture import random_frames


class FakeRunner:
    """Decodes frame f to 2048 samples of f[0] / 4096; records every call; can be held."""

    kind = "fake"
    device = "cpu"

    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[np.ndarray] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail = fail

    def decode(self, frames: np.ndarray) -> np.ndarray:
        self.calls.append(frames.copy())
        self.entered.set()
        self.gate.wait(10)
        if self.fail:
            raise RuntimeError("kernel exploded")
        return np.repeat(frames[:, :, 0].astype(np.float32) / 4096, SAMPLES_PER_FRAME, axis=1)


def window(frames: int, seed: int) -> np.ndarray:
    return np.asarray(random_frames(frames, seed=seed), dtype=np.int64)


def expected(frames: np.ndarray) -> np.ndarray:
    return np.repeat(frames[:, 0].astype(np.float32) / 4096, SAMPLES_PER_FRAME)


@pytest.fixture
async def make_worker():
    made: list[DecodeWorker] = []

    def make(runner: FakeRunner, **kwargs: object) -> DecodeWorker:
        worker = DecodeWorker(runner, **kwargs)  # type: ignore[arg-type]
        made.append(worker)
        return worker

    yield make
    for worker in made:
        await worker.aclose()


async def wait_until(predicate, timeout_s: float = 5.0) -> None:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.002)


async def test_a_lone_window_is_decoded_at_once_and_waiting_ones_batch(make_worker) -> None:
    """A batching worker never waits for company: the first window goes alone; windows that
    arrive while it runs are decoded together in the next call."""
    runner = FakeRunner()
    worker = make_worker(runner, batch=True)
    runner.gate.clear()
    submitted = asyncio.get_running_loop().time()
    lone = asyncio.create_task(worker.decode(window(4, 1)))
    await wait_until(runner.entered.is_set)
    assert asyncio.get_running_loop().time() - submitted < 1.0  # no batching timer (~1 ms)
    assert [c.shape for c in runner.calls] == [(1, 4, 7)]  # decoding before anyone else came
    others = [asyncio.create_task(worker.decode(window(4, s))) for s in (2, 3, 4)]
    await wait_until(lambda: worker.stats().waiting == 3)
    runner.gate.set()
    results = await asyncio.gather(lone, *others)
    assert [c.shape for c in runner.calls] == [(1, 4, 7), (3, 4, 7)]
    for seed, audio in zip((1, 2, 3, 4), results, strict=True):
        np.testing.assert_array_equal(audio, expected(window(4, seed)))
    stats = worker.stats()
    assert (stats.windows, stats.batches, stats.frames_decoded) == (4, 2, 16)


async def test_batches_hold_one_window_length(make_worker) -> None:
    runner = FakeRunner()
    worker = make_worker(runner, batch=True, max_batch=2)
    runner.gate.clear()
    first = asyncio.create_task(worker.decode(window(4, 0)))
    await wait_until(runner.entered.is_set)
    lengths = (6, 4, 6, 6)
    rest = [asyncio.create_task(worker.decode(window(n, 10 + i))) for i, n in enumerate(lengths)]
    await wait_until(lambda: worker.stats().waiting == 4)
    runner.gate.set()
    await asyncio.gather(first, *rest)
    # oldest first; each call one length; at most max_batch windows per call
    assert [c.shape[:2] for c in runner.calls] == [(1, 4), (2, 6), (1, 4), (1, 6)]


async def test_one_by_one_on_a_device_where_batching_does_not_pay(make_worker) -> None:
    runner = FakeRunner()
    worker = make_worker(runner, batch=False)
    runner.gate.clear()
    tasks = [asyncio.create_task(worker.decode(window(5, s))) for s in range(4)]
    await wait_until(lambda: worker.stats().waiting == 3)
    runner.gate.set()
    await asyncio.gather(*tasks)
    assert [c.shape for c in runner.calls] == [(1, 5, 7)] * 4
    assert [int(c[0, 0, 0]) for c in runner.calls] == [int(window(5, s)[0, 0]) for s in range(4)]


async def test_lanes_decode_windows_side_by_side(make_worker) -> None:
    """On a CPU, one lane per core: two windows decode at once, a third waits its turn."""
    runner = FakeRunner()
    worker = make_worker(runner, batch=False, lanes=2)
    runner.gate.clear()
    tasks = [asyncio.create_task(worker.decode(window(3, s))) for s in range(3)]
    await wait_until(lambda: len(runner.calls) == 2)
    assert worker.stats().waiting == 1 and worker.stats().lanes == 2
    runner.gate.set()
    for seed, audio in enumerate(await asyncio.gather(*tasks)):
        np.testing.assert_array_equal(audio, expected(window(3, seed)))
    assert make_worker(FakeRunner(), batch=True, lanes=4).lanes == 1  # batching: one place


async def test_a_cancelled_streams_windows_never_come_back(make_worker) -> None:
    runner = FakeRunner()
    worker = make_worker(runner, batch=True)
    runner.gate.clear()
    busy = asyncio.create_task(worker.decode(window(4, 100)))  # another stream, decoding
    await wait_until(runner.entered.is_set)
    gone = asyncio.create_task(worker.decode(window(4, 200)))
    stays = asyncio.create_task(worker.decode(window(4, 300)))
    await wait_until(lambda: worker.stats().waiting == 2)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    runner.gate.set()
    np.testing.assert_array_equal(await stays, expected(window(4, 300)))
    await busy
    decoded = [tuple(row[0]) for call in runner.calls for row in call]
    assert tuple(window(4, 200)[0]) not in decoded
    assert worker.stats().dropped == 1


async def test_a_window_cancelled_mid_decode_is_discarded(make_worker) -> None:
    runner = FakeRunner()
    worker = make_worker(runner, batch=False)
    runner.gate.clear()
    task = asyncio.create_task(worker.decode(window(4, 1)))
    await wait_until(runner.entered.is_set)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    runner.gate.set()
    # the worker carries on for the others
    np.testing.assert_array_equal(await worker.decode(window(3, 2)), expected(window(3, 2)))


async def test_decode_failures_reach_every_stream_typed(make_worker) -> None:
    runner = FakeRunner(fail=True)
    worker = make_worker(runner, batch=True)
    with pytest.raises(EngineError, match="kernel exploded") as info:
        await worker.decode(window(4, 1))
    assert info.value.backend == "snac_llamacpp"
    runner.fail = False
    assert (await worker.decode(window(2, 1))).shape == (2 * SAMPLES_PER_FRAME,)


async def test_the_queue_is_bounded(make_worker) -> None:
    runner = FakeRunner()
    worker = make_worker(runner, batch=False, max_waiting=2)
    runner.gate.clear()
    tasks = [asyncio.create_task(worker.decode(window(2, s))) for s in range(4)]
    await wait_until(runner.entered.is_set)
    await wait_until(lambda: worker.stats().waiting == 1)
    for _ in range(20):  # loop turns enough for the other two to queue too, were they let
        await asyncio.sleep(0)
    assert worker.stats().waiting == 1  # two slots: one decoding, one queued, two held back
    runner.gate.set()
    await asyncio.gather(*tasks)
    assert len(runner.calls) == 4


async def test_stats_count_new_frames_and_averages(make_worker) -> None:
    worker = make_worker(FakeRunner(), batch=False)
    await worker.decode(window(6, 1), new_frames=3)
    await worker.decode(window(4, 2), new_frames=1)
    s = worker.stats()
    assert (s.windows, s.frames_decoded, s.frames_new, s.dropped) == (2, 10, 4.0, 0)
    assert s.decode_s > 0 and s.recent_ms_per_frame > 0
    assert 4 <= s.recent_frames_per_window <= 6 and s.recent_batch_size == 1
    assert (s.device, s.kind, s.batching) == ("cpu", "fake", False)


async def test_closing_fails_what_waits_and_stops_the_thread(make_worker) -> None:
    runner = FakeRunner()
    worker = make_worker(runner, batch=False)
    runner.gate.clear()
    first = asyncio.create_task(worker.decode(window(2, 1)))
    await wait_until(runner.entered.is_set)
    queued = asyncio.create_task(worker.decode(window(2, 2)))
    await wait_until(lambda: worker.stats().waiting == 1)
    (thread,) = worker._threads
    assert thread.is_alive()
    closing = asyncio.create_task(worker.aclose())
    await wait_until(queued.done)  # closing has begun: what waits is failed
    runner.gate.set()
    await closing
    with pytest.raises(BackendUnavailable, match="closed"):
        await queued
    await first
    assert not thread.is_alive()
    with pytest.raises(BackendUnavailable, match="closed"):
        await worker.decode(window(2, 3))


# ---------------------------------------------------------------------------- real network


@pytest.fixture(scope="module")
def quiet_runner(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    torch = torch_or_skip()
    from adapters.orpheus.model import load_snac
    from adapters.orpheus.runtime import TorchSnac
    from tests.snac_fixture import write_snac_checkpoint

    torch.set_num_threads(1)
    path: Path = write_snac_checkpoint(tmp_path_factory.mktemp("snac_q"), silent_noise=True,
                                       legacy_keys=False)
    return TorchSnac(load_snac(path, "cpu"))


async def test_batched_torch_decode_equals_one_by_one(quiet_runner) -> None:
    """The same windows of four streams, decoded in one batched call and one by one."""
    windows = [window(6, 40 + s) for s in range(4)]
    alone = [quiet_runner.decode(w[None])[0] for w in windows]
    batched = DecodeWorker(quiet_runner, batch=True)
    try:
        together = await asyncio.gather(*(batched.decode(w) for w in windows))
    finally:
        await batched.aclose()
    assert batched.stats().batches < 4  # some windows really were decoded together
    for a, b in zip(alone, together, strict=True):
        assert a.shape == b.shape == (6 * SAMPLES_PER_FRAME,)
        assert float(np.abs(a - b).max()) < 1e-4  # float tolerance: < 4 LSB of s16


def test_windows_are_cut_to_what_decodes_within_the_budget() -> None:
    """On an overloaded machine (slow decodes) a window that takes everything ready is cut,
    so that every stream's turn comes round before the orchestrator would call it a stall."""
    from adapters.orpheus.stream import MIN_WINDOW_MS, ROUND_BUDGET_MS, Pacing, window_cap

    assert (ROUND_BUDGET_MS, MIN_WINDOW_MS) == (2000.0, 400.0)  # the figures below assume them
    worker = DecodeWorker(FakeRunner(), batch=False)
    assert worker.frames_within(ROUND_BUDGET_MS) is None  # no pace known yet: no cut
    assert window_cap(Pacing(), 2, worker) is None
    worker._stats.recent_ms_per_frame = 50.0
    assert window_cap(Pacing(), 1, worker) == 40 - 3  # alone: 2 s of frames, minus context
    worker._jobs.extend([object()] * 3)  # type: ignore[list-item]  # three windows queued
    assert window_cap(Pacing(), 1, worker) == 10 - 3  # a quarter of the round each
    assert window_cap(Pacing(), 9, worker) == 9  # never below what the stream waited for
    worker.lanes = 2
    assert window_cap(Pacing(), 1, worker) == 20 - 3  # two lanes: twice the frames per round
    worker._jobs.extend([object()] * 20)  # type: ignore[list-item]
    assert window_cap(Pacing(), 1, worker) == 8 - 3  # never under 400 ms of decoding
    worker._jobs.clear()
    assert window_cap(Pacing(equal_windows=True), 4, worker) == 4  # batching: equal windows
