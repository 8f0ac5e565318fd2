"""Who gets a stream slot: PARALLEL_STREAMS at once, then a bounded FIFO queue, then 429.

A newcomer never passes someone already waiting; a waiter that gives up (QUEUE_TIMEOUT_S, or
its client left) hands a slot granted meanwhile on to the next. While the server drains for
shutdown nobody is admitted (503).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from server.metrics import Metrics


class Busy(Exception):
    """Every stream slot and queue place is taken (the transport answers 429), or the server
    is draining for shutdown (503)."""

    def __init__(self, retry_after_s: float, *, draining: bool = False) -> None:
        super().__init__("the server is shutting down" if draining
                         else "too many concurrent streams")
        self.retry_after_s = retry_after_s
        self.draining = draining


class Admission:
    """Stream slots, first come first served. `running()` counts the streams holding one."""

    def __init__(self, settings: Callable[[], Any], metrics: Metrics,
                 running: Callable[[], int]) -> None:
        self._settings = settings
        self._metrics = metrics
        self._running = running
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._granted = 0  # slots handed to waiters that have not registered their stream yet
        self.draining = False  # shutting down: no new streams

    @property
    def queued(self) -> int:
        """Streams waiting for a slot."""
        return len(self._waiters)

    @property
    def pending_grants(self) -> int:
        """Slots handed to waiters that have not registered their stream yet."""
        return self._granted

    async def admit(self) -> None:
        """Wait for a slot; Busy when the queue is full, the wait exceeds QUEUE_TIMEOUT_S or
        the server is draining. The caller registers its stream before its next await."""
        s = self._settings()
        if self.draining:
            raise Busy(retry_after_s=5.0, draining=True)
        if not self._waiters and self._running() + self._granted < s.parallel_streams:
            return
        if len(self._waiters) >= s.queue_max:
            self._metrics.rejected.inc()
            raise Busy(retry_after_s=max(1.0, s.queue_timeout_s / 2))
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        self._metrics.queued.set(len(self._waiters))
        try:
            await asyncio.wait_for(asyncio.shield(turn), s.queue_timeout_s)
        except (asyncio.TimeoutError, asyncio.CancelledError) as e:
            if turn.done() and not turn.cancelled():
                self._granted -= 1  # granted as we gave up: pass the slot on
                self.grant()
            else:
                turn.cancel()
                self._waiters.remove(turn)
            self._metrics.queued.set(len(self._waiters))
            if isinstance(e, asyncio.CancelledError):
                raise
            self._metrics.rejected.inc()
            raise Busy(retry_after_s=max(1.0, s.queue_timeout_s / 2)) from None
        self._granted -= 1

    def grant(self) -> None:
        """A slot was freed: hand free slots to the longest waiters."""
        limit = self._settings().parallel_streams
        while self._waiters and self._running() + self._granted < limit:
            turn = self._waiters.popleft()
            self._granted += 1
            turn.set_result(None)
        self._metrics.queued.set(len(self._waiters))


__all__ = ["Admission", "Busy"]
