"""Sending to a client that has stopped reading: give up after WRITE_TIMEOUT_S.

A client that keeps its connection open but takes nothing (TCP backpressure) would hold a
stream slot forever. Every face sends through `send_within`: past the deadline the connection
is closed, the timeout counted (tts_timeouts_total{kind="write"}), and ConnectionResetError
raised, which every face already treats as the client going away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from server.metrics import Metrics

log = logging.getLogger("morpheus.writes")


async def send_within(send: Awaitable[object], timeout_s: float, metrics: Metrics,
                      close: Callable[[], object]) -> None:
    """Await `send`; if the client takes nothing for `timeout_s`, close and raise."""
    try:
        await asyncio.wait_for(send, timeout_s)
    except asyncio.TimeoutError:
        metrics.timeouts.labels("write").inc()
        log.warning("client took no data for %.0f s: closing its connection", timeout_s)
        close()
        raise ConnectionResetError(f"the client took no data for {timeout_s:g} s") from None


def closer(request: web.Request) -> Callable[[], None]:
    """Close a request's connection at once (its transport), whatever is buffered."""
    def close() -> None:
        if request.transport is not None:
            request.transport.close()
    return close


__all__ = ["closer", "send_within"]
