"""Contract case for the `wyoming` backend: the real wyoming-piper (bundled joe voice) on
127.0.0.1, its open connections counted from the kernel's socket table; refused, silent
(read timeout) and garbage (an HTTP answer) upstreams."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from adapters.upstream import Timeouts
from adapters.wyoming import WyomingAdapter
from tests.wyoming_servers import WyomingPiper, garbage_server, refused_uri, silent_server

FAST_FAIL = Timeouts(connect_s=1.0, read_s=0.5)


@dataclass
class Served:
    """A running backend: the adapter, and the server-side count of open connections."""

    adapter: WyomingAdapter
    open_connections: Callable[[], int]


class WyomingCase:
    backend = "wyoming"
    native_rate_hz = 22050  # what wyoming-piper's audio-start says for the joe voice

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[Served]:
        async with WyomingPiper() as server:
            adapter = WyomingAdapter(server.uri)
            await adapter.warmup()
            try:
                yield Served(adapter, server.open_connections)
            finally:
                await adapter.aclose()

    @asynccontextmanager
    async def refused(self) -> AsyncIterator[WyomingAdapter]:
        yield WyomingAdapter(refused_uri(), timeouts=FAST_FAIL)

    @asynccontextmanager
    async def timed_out(self) -> AsyncIterator[WyomingAdapter]:
        async with silent_server() as server:
            yield WyomingAdapter(server.uri, timeouts=FAST_FAIL)

    @asynccontextmanager
    async def garbage(self) -> AsyncIterator[WyomingAdapter]:
        async with garbage_server() as server:
            yield WyomingAdapter(server.uri, timeouts=FAST_FAIL)


CASE = WyomingCase()

__all__ = ["CASE", "Served", "WyomingCase"]
