"""Earliest-deadline-first access to an engine: the stream with the least audio ahead goes next."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager


class EdfGate:
    """A semaphore whose waiters are granted by urgency, evaluated at grant time.

    `urgency()` returns the waiter's audio ahead of playback in ms (lower = more urgent), so a
    stream far ahead yields to one near underflow. `slots=None` means unbounded.
    """

    def __init__(self, slots: int | None) -> None:
        self.slots = slots
        self.busy = 0
        self._waiters: list[tuple[Callable[[], float], asyncio.Future[None], int]] = []
        self._seq = 0

    @asynccontextmanager
    async def slot(self, urgency: Callable[[], float]) -> AsyncIterator[None]:
        await self._acquire(urgency)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, urgency: Callable[[], float]) -> None:
        if self.slots is None or (self.busy < self.slots and not self._waiters):
            self.busy += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        entry = (urgency, fut, self._seq)
        self._waiters.append(entry)
        try:
            await fut
        except asyncio.CancelledError:
            if entry in self._waiters:
                self._waiters.remove(entry)
            elif fut.done() and not fut.cancelled():
                self._release()  # granted just as we were cancelled: pass it on
            raise

    def _release(self) -> None:
        self.busy -= 1
        self._grant()

    def _grant(self) -> None:
        while self._waiters and (self.slots is None or self.busy < self.slots):
            # FIFO among equals (seq) so no stream starves at equal urgency.
            entry = min(self._waiters, key=lambda w: (w[0](), w[2]))
            self._waiters.remove(entry)
            if entry[1].done():  # cancelled, its task not yet resumed to leave the queue
                continue
            self.busy += 1
            entry[1].set_result(None)
