"""Admission is first come, first served: nobody passes someone already waiting."""

from __future__ import annotations

import asyncio

import pytest

from adapters.synthetic import SyntheticAdapter
from server.core.admission import Busy
from server.core.stream import StreamSpec
from tests.sim import make_orchestrator
from tests.waits import wait_until


async def opened(orch, name: str, order: list[str]):  # noqa: ANN001, ANN201
    stream = await orch.open(StreamSpec(request_id=name))
    order.append(name)
    return stream


async def test_waiters_are_admitted_in_arrival_order_and_newcomers_queue_behind() -> None:
    orch = make_orchestrator({"synthetic": SyntheticAdapter()}, parallel_streams=1,
                             queue_max=8, queue_timeout_s=30)
    order: list[str] = []
    a = await opened(orch, "a", order)
    waiters = []
    for queued, name in enumerate("bcd", 1):
        waiters.append(asyncio.create_task(opened(orch, name, order)))
        await wait_until(lambda n=queued: orch.admission.queued == n)  # in line: the next one
    assert order == ["a"] and orch.admission.queued == 3
    await a.aclose()  # frees the slot: it goes to b ...
    late = asyncio.create_task(opened(orch, "late", order))  # ... even though late asks now
    await wait_until(lambda: len(order) == 2)
    assert order == ["a", "b"]
    for expected in ("c", "d", "late"):
        current = orch.get(order[-1])
        admitted = len(order)
        await current.aclose()
        await wait_until(lambda n=admitted: len(order) > n)
        assert order[-1] == expected, order
    await orch.get("late").aclose()
    await asyncio.gather(*waiters, late)
    assert not orch.streams and not orch.admission.queued and orch.admission.pending_grants == 0


async def test_a_waiter_that_times_out_gets_busy_and_leaves_the_queue() -> None:
    orch = make_orchestrator({"synthetic": SyntheticAdapter()}, parallel_streams=1,
                             queue_max=8, queue_timeout_s=0.1)
    order: list[str] = []
    a = await opened(orch, "a", order)
    with pytest.raises(Busy):
        await opened(orch, "b", order)
    assert not orch.admission.queued
    await a.aclose()
    c = await asyncio.wait_for(opened(orch, "c", order), 1)  # the slot is free again at once
    await c.aclose()


async def test_a_cancelled_waiter_passes_a_granted_slot_on() -> None:
    orch = make_orchestrator({"synthetic": SyntheticAdapter()}, parallel_streams=1,
                             queue_max=8, queue_timeout_s=30)
    order: list[str] = []
    a = await opened(orch, "a", order)
    b = asyncio.create_task(opened(orch, "b", order))
    await wait_until(lambda: orch.admission.queued == 1)
    c = asyncio.create_task(opened(orch, "c", order))
    await wait_until(lambda: orch.admission.queued == 2)
    await a.aclose()  # grants b ...
    b.cancel()  # ... which is cancelled in the same instant (wait_for may let it through)
    (b_result,) = await asyncio.gather(b, return_exceptions=True)
    await wait_until(lambda: len(order) == 2)
    if isinstance(b_result, asyncio.CancelledError):
        assert order == ["a", "c"]  # the slot b was granted went on to c, not lost
    else:
        assert order == ["a", "b"]  # b took it after all; c still waits its turn
        await b_result.aclose()
        await wait_until(lambda: len(order) == 3)
        assert order == ["a", "b", "c"]
    await orch.get("c").aclose()
    await c
    assert not orch.streams and not orch.admission.queued and orch.admission.pending_grants == 0


async def test_queue_full_is_busy_at_once() -> None:
    orch = make_orchestrator({"synthetic": SyntheticAdapter()}, parallel_streams=1,
                             queue_max=1, queue_timeout_s=30)
    order: list[str] = []
    a = await opened(orch, "a", order)
    b = asyncio.create_task(opened(orch, "b", order))
    await wait_until(lambda: orch.admission.queued == 1)
    with pytest.raises(Busy):
        await opened(orch, "c", order)
    await a.aclose()
    await (await b).aclose()


async def test_draining_refuses_new_streams() -> None:
    orch = make_orchestrator({"synthetic": SyntheticAdapter()})
    orch.draining = True
    with pytest.raises(Busy) as info:
        await orch.open(StreamSpec())
    assert info.value.draining
