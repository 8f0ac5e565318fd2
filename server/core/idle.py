"""What an idle server gives back: once nothing has happened for IDLE_GIVE_BACK_S after some
activity, Python's cyclic garbage is collected and the C heap's free pages go back to the OS.

Without it an idle server keeps what its last burst took: a closed WebRTC session's codec
objects (and their two native threads) sit in reference cycles until the cyclic collector's
oldest generation runs, which an idle process may not do for hours, and glibc keeps freed
pages below the top of its heap (measured after a soak of every face: +35 MB of a 146 MB burst
left, docs/bench/soak.md). The collection runs on the event loop (it holds the GIL wherever
it runs), once per idle spell, never while a stream runs.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable, Hashable

from adapters.heap import release_free_heap

log = logging.getLogger("morpheus.idle")

IDLE_GIVE_BACK_S = 5.0  # quiet this long after activity: give memory back
POLL_S = 1.0


class IdleGiveBack:
    """Watches `activity` (anything that changes when streams start or connections open and
    close) and `busy` (a stream runs); gives memory back once per idle spell."""

    def __init__(self, activity: Callable[[], Hashable], busy: Callable[[], bool],
                 idle_s: float | None = None, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self._activity, self._busy, self._clock = activity, busy, clock
        self._idle_s = IDLE_GIVE_BACK_S if idle_s is None else idle_s
        self._seen = activity()
        self._quiet_since = clock()
        self._owed = False  # activity since the last give-back

    def due(self) -> bool:
        """One look: True when memory should be given back now."""
        now, seen = self._clock(), self._activity()
        if self._busy() or seen != self._seen:
            self._seen, self._quiet_since, self._owed = seen, now, True
            return False
        if self._owed and now - self._quiet_since >= self._idle_s:
            self._owed = False
            return True
        return False

    async def give_back(self) -> None:
        t0 = time.perf_counter()
        found = gc.collect()
        collected_ms = 1000 * (time.perf_counter() - t0)
        await asyncio.to_thread(release_free_heap)
        log.debug("idle: memory given back", extra={"gc_objects": found,
                                                    "gc_ms": round(collected_ms, 1)})

    async def watch(self) -> AsyncIterator[None]:
        """cleanup_ctx body: look every POLL_S while the app runs."""
        async def loop() -> None:
            while True:
                await asyncio.sleep(POLL_S)
                if self.due():
                    await self.give_back()

        task = asyncio.create_task(loop(), name="idle-give-back")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


__all__ = ["IDLE_GIVE_BACK_S", "IdleGiveBack"]
