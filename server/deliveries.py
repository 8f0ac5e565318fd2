"""What the server still owes its listeners, so that a drain (SIGTERM, a rolling restart) waits
for it: audio being made, and audio sent that the listener has not heard yet.

The engine is often far ahead of the listener (20x real time): when the orchestrator's streams
are done, a WebSocket client may still have seconds of audio to hear, paced by its playback
reports. Every transport therefore registers each connection that carries audio as a
`Delivery`, which says whether it still owes anything and how to close it with a reason the
client can read. HTTP requests are tracked by a middleware (a body is owed until written).

`Deliveries.settle()` is the drain: connections that owe nothing are closed at once (their
clients reconnect elsewhere), the others as soon as they are delivered, and what still owes
when the grace period ends is closed with a reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import hdrs, web

log = logging.getLogger("morpheus.lifecycle")

SHUTDOWN_REASON = "server shutdown"  # what a client is told when a drained connection closes
GRACE_OVER_REASON = "server shutdown: the grace period (SHUTDOWN_GRACE_S) is over"
POLL_S = 0.05


class Delivery(Protocol):
    """One connection that carries audio to a listener."""

    transport: str

    def owes(self) -> bool:
        """Audio is still being made for it, or sent and not yet heard (as far as the server
        can tell: the client's playback reports, the paced track, or the wall clock)."""

    async def close_for_shutdown(self, reason: str) -> None:
        """Close now, telling the client why in its own protocol; stop what still runs."""


class Playout:
    """A listener that reports nothing and plays what it receives in real time from the moment
    it arrives (an ElevenLabs client): when it will have heard everything sent so far."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ends_at = 0.0

    def sent(self, ms: float) -> None:
        now = self._clock()
        self._ends_at = max(self._ends_at, now) + ms / 1000.0

    def remaining_ms(self) -> float:
        return max(0.0, 1000.0 * (self._ends_at - self._clock()))


class _HttpRequest:
    """An HTTP request in flight: its body is owed until the handler returns."""

    transport = "http"

    def owes(self) -> bool:
        return True

    async def close_for_shutdown(self, reason: str) -> None:
        """Nothing to say mid-body: the server's cleanup cancels the handler."""


class Deliveries:
    """The connections of one app that carry audio."""

    def __init__(self) -> None:
        self._open: set[Delivery] = set()
        self.draining = False

    def add(self, delivery: Delivery) -> None:
        self._open.add(delivery)

    def discard(self, delivery: Delivery) -> None:
        self._open.discard(delivery)

    def __len__(self) -> int:
        return len(self._open)

    def connections(self) -> int:
        """The open connections besides plain HTTP requests (sockets, peers): what an idle
        watcher counts, where a health check or a metrics scrape is no activity."""
        return sum(1 for d in self._open if not isinstance(d, _HttpRequest))

    def owing(self) -> list[Delivery]:
        return [d for d in self._open if d.owes()]

    async def settle(self, grace_s: float, busy: Callable[[], bool] = lambda: False) -> bool:
        """Close every connection once it owes nothing, for up to `grace_s`; then close the
        rest with a reason. True when everything was delivered in time. `busy` says whether
        work outside any connection (a stream with no transport yet) still runs."""
        self.draining = True
        deadline = time.monotonic() + grace_s
        closing: set[asyncio.Task[None]] = set()
        while True:
            for d in list(self._open):
                if not d.owes():
                    self._open.discard(d)
                    closing.add(asyncio.ensure_future(_close(d, SHUTDOWN_REASON)))
            if not self._open and not busy():
                break
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL_S)
        left = list(self._open)
        if left:
            log.warning("grace period over: closing %d connection(s) still delivering (%s)",
                        len(left), ", ".join(sorted({d.transport for d in left})))
            for d in left:
                self._open.discard(d)
                closing.add(asyncio.ensure_future(_close(d, GRACE_OVER_REASON)))
        if closing:
            await asyncio.gather(*closing, return_exceptions=True)
        return not left


async def _close(delivery: Delivery, reason: str) -> None:
    try:
        await delivery.close_for_shutdown(reason)
    except (ConnectionError, OSError):
        pass  # the client went away on its own
    except Exception:  # one connection's trouble must not stop the drain of the others
        log.exception("closing a %s connection at shutdown failed", delivery.transport)


DELIVERIES = web.AppKey("deliveries", Deliveries)


@web.middleware
async def track_http(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
    """Count each plain HTTP request (not a WebSocket: those register themselves)."""
    if request.headers.get(hdrs.UPGRADE, "").lower() == "websocket":
        return await handler(request)
    deliveries = request.app[DELIVERIES]
    token = _HttpRequest()
    deliveries.add(token)
    try:
        return await handler(request)
    finally:
        deliveries.discard(token)


__all__ = ["DELIVERIES", "GRACE_OVER_REASON", "SHUTDOWN_REASON", "Deliveries", "Delivery",
           "Playout", "track_http"]
