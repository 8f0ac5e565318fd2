"""EdfGate: several waiters for few slots, granted by urgency at grant time, FIFO among equals."""

from __future__ import annotations

import asyncio
import random

import pytest

from server.core.scheduler import EdfGate


class Waiter:
    """One stream waiting at the gate: its urgency can change while it waits."""

    def __init__(self, gate: EdfGate, name: str, ahead_ms: float, granted: list[str],
                 hold: asyncio.Event | None = None) -> None:
        self.name = name
        self.ahead_ms = ahead_ms
        self.task = asyncio.create_task(self._run(gate, granted, hold))

    async def _run(self, gate: EdfGate, granted: list[str], hold: asyncio.Event | None) -> None:
        async with gate.slot(lambda: self.ahead_ms):
            granted.append(self.name)
            if hold is not None:
                await hold.wait()
            else:
                await asyncio.sleep(0)  # hand the slot on from inside the loop, like a chunk


async def settle() -> None:
    """Let every runnable task run until all of them wait again."""
    for _ in range(20):
        await asyncio.sleep(0)


async def queued(gate: EdfGate, n: int) -> None:
    for _ in range(100):
        if len(gate._waiters) == n:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{len(gate._waiters)} waiters, expected {n}")


async def holder(gate: EdfGate) -> tuple[asyncio.Event, asyncio.Task[None]]:
    """A stream that takes the only slot and keeps it until the returned event is set."""
    release = asyncio.Event()
    granted: list[str] = []
    w = Waiter(gate, "holder", 0.0, granted, hold=release)
    await settle()
    assert granted == ["holder"] and gate.busy == 1
    return release, w.task


async def test_waiters_are_granted_by_urgency_evaluated_at_grant_time():
    gate = EdfGate(1)
    release, held = await holder(gate)
    granted: list[str] = []
    mid = Waiter(gate, "mid", 400.0, granted)
    await queued(gate, 1)
    far = Waiter(gate, "far", 900.0, granted)
    await queued(gate, 2)
    near = Waiter(gate, "near", 100.0, granted)
    await queued(gate, 3)
    far.ahead_ms = 50.0  # its listener drained while it waited: now the most urgent
    release.set()
    await asyncio.wait_for(asyncio.gather(held, far.task, near.task, mid.task), 5)
    assert granted == ["far", "near", "mid"]
    assert gate.busy == 0 and not gate._waiters


async def test_equal_urgency_is_first_come_first_served():
    gate = EdfGate(1)
    release, held = await holder(gate)
    granted: list[str] = []
    waiters = []
    for name in ("a", "b", "c", "d", "e"):
        waiters.append(Waiter(gate, name, 250.0, granted))
        await queued(gate, len(waiters))
    release.set()
    await asyncio.wait_for(asyncio.gather(held, *(w.task for w in waiters)), 5)
    assert granted == ["a", "b", "c", "d", "e"]


async def test_a_cancelled_waiter_leaves_the_queue_and_the_others_proceed():
    gate = EdfGate(1)
    release, held = await holder(gate)
    granted: list[str] = []
    first = Waiter(gate, "first", 100.0, granted)
    gone = Waiter(gate, "gone", 10.0, granted)  # the most urgent, but it leaves
    last = Waiter(gate, "last", 300.0, granted)
    await queued(gate, 3)
    gone.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone.task
    assert len(gate._waiters) == 2 and gate.busy == 1
    release.set()
    await asyncio.wait_for(asyncio.gather(held, first.task, last.task), 5)
    assert granted == ["first", "last"]
    assert gate.busy == 0 and not gate._waiters


async def test_a_grant_racing_a_cancel_passes_the_slot_on():
    gate = EdfGate(1)
    release, held = await holder(gate)
    granted: list[str] = []
    unlucky = Waiter(gate, "unlucky", 10.0, granted)
    next_one = Waiter(gate, "next", 500.0, granted)
    await queued(gate, 2)
    # The holder lets go: the gate grants the slot to `unlucky` (its future is resolved) ...
    release.set()
    for _ in range(100):
        if not held.done():
            await asyncio.sleep(0)
    assert held.done() and len(gate._waiters) == 1 and gate.busy == 1
    # ... and before `unlucky` runs, its client goes away.
    unlucky.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await unlucky.task
    await asyncio.wait_for(next_one.task, 5)  # the slot was not lost with the cancelled waiter
    assert granted == ["next"]
    assert gate.busy == 0 and not gate._waiters


async def test_a_waiter_cancelled_just_before_a_grant_is_skipped():
    gate = EdfGate(1)
    release, held = await holder(gate)
    granted: list[str] = []
    gone = Waiter(gate, "gone", 10.0, granted)  # the most urgent
    other = Waiter(gate, "other", 500.0, granted)
    await queued(gate, 2)
    # In one loop step: the holder is woken to let go, and `gone`'s client leaves. The holder
    # runs first and grants while `gone` is still queued with a cancelled future.
    release.set()
    gone.task.cancel()
    await asyncio.wait_for(held, 5)  # releasing must not fail because another stream left
    with pytest.raises(asyncio.CancelledError):
        await gone.task
    await asyncio.wait_for(other.task, 5)
    assert granted == ["other"]
    assert gate.busy == 0 and not gate._waiters


async def test_several_slots_fill_before_anyone_waits_and_a_newcomer_queues_behind():
    gate = EdfGate(2)
    hold = asyncio.Event()
    granted: list[str] = []
    a = Waiter(gate, "a", 0.0, granted, hold=hold)
    b = Waiter(gate, "b", 0.0, granted, hold=hold)
    await settle()
    assert granted == ["a", "b"] and gate.busy == 2
    c = Waiter(gate, "c", 200.0, granted)
    d = Waiter(gate, "d", 100.0, granted)
    await queued(gate, 2)
    hold.set()
    await asyncio.wait_for(asyncio.gather(a.task, b.task, c.task, d.task), 5)
    assert granted == ["a", "b", "d", "c"]
    assert gate.busy == 0


async def test_unbounded_gate_never_waits():
    gate = EdfGate(None)
    hold = asyncio.Event()
    granted: list[str] = []
    waiters = [Waiter(gate, str(i), float(i), granted, hold=hold) for i in range(20)]
    await settle()
    assert len(granted) == 20 and gate.busy == 20 and not gate._waiters
    hold.set()
    await asyncio.wait_for(asyncio.gather(*(w.task for w in waiters)), 5)
    assert gate.busy == 0


@pytest.mark.parametrize("seed", range(5))
async def test_churn_never_exceeds_the_slots_and_leaks_nothing(seed):
    rng = random.Random(seed)
    gate = EdfGate(2)
    inside = 0
    most = 0
    finished: list[int] = []

    async def stream(i: int) -> None:
        nonlocal inside, most
        for _ in range(5):
            async with gate.slot(lambda: rng.uniform(0, 500)):
                inside += 1
                most = max(most, inside)
                try:
                    await asyncio.sleep(rng.choice([0, 0, 0.001]))
                finally:
                    inside -= 1
        finished.append(i)

    tasks = [asyncio.create_task(stream(i)) for i in range(12)]
    for _ in range(30):  # clients leave at random moments, some while granted
        await asyncio.sleep(rng.choice([0, 0.0005]))
        rng.choice(tasks).cancel()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    assert most <= 2
    assert gate.busy == 0 and not gate._waiters
    cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
    assert cancelled + len(finished) == 12 and finished
