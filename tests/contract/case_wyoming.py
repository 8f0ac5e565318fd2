"""wyoming against the real wyoming-piper (bundled joe voice) on 127.0.0.1, its open
connections counted from the kernel's socket table; refused, silent (read timeout) and
garbage (an HTTP answer) upstreams."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from adapters.base import TTSAdapter
from tests.contract import (
    FAULT_TIMEOUTS,
    CaseEnv,
    ContractCase,
    Running,
    closing_adapter,
    make_adapter,
)
from tests.wyoming_servers import WyomingPiper, garbage_server, refused_uri, silent_server


@asynccontextmanager
async def start(env: CaseEnv) -> AsyncIterator[Running]:
    async with WyomingPiper() as server:
        adapter = make_adapter("wyoming", wyoming_tts_uri=server.uri)
        await adapter.warmup()
        async with closing_adapter(adapter):
            yield Running(adapter, live=server.open_connections)


@asynccontextmanager
async def refused(env: CaseEnv) -> AsyncIterator[TTSAdapter]:
    async with closing_adapter(make_adapter("wyoming", wyoming_tts_uri=refused_uri(),
                                            **FAULT_TIMEOUTS)) as a:
        yield a


def served_by(
    make_server: Callable[[], AbstractAsyncContextManager],  # type: ignore[type-arg]
) -> Callable[[CaseEnv], AbstractAsyncContextManager[TTSAdapter]]:
    @asynccontextmanager
    async def factory(env: CaseEnv) -> AsyncIterator[TTSAdapter]:
        async with make_server() as server, closing_adapter(make_adapter(
                "wyoming", wyoming_tts_uri=server.uri, **FAULT_TIMEOUTS)) as a:
            yield a

    return factory


CASE = ContractCase(backend="wyoming", start=start, refused=refused,
                    timed_out=served_by(silent_server), garbage=served_by(garbage_server))
