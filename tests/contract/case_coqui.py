"""coqui against the Coqui tts-server test server (a multi-speaker model, paced body)."""

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
from tests.coqui_server import CoquiTestServer
from tests.upstream_server import Fault, refused_url


@asynccontextmanager
async def start(env: CaseEnv) -> AsyncIterator[Running]:
    async with CoquiTestServer(rtf=4.0, chunk_ms=100) as srv:
        adapter = make_adapter("coqui", coqui_url=srv.url, coqui_voice="p226")
        async with closing_adapter(adapter):
            yield Running(adapter, live=srv.open_connections, work_done=lambda: srv.chunks_sent,
                          server_audio_ms=lambda: srv.audio_requests("/api/tts")[-1].audio_ms)


@asynccontextmanager
async def refused(env: CaseEnv) -> AsyncIterator[TTSAdapter]:
    async with closing_adapter(make_adapter("coqui", coqui_url=refused_url(),
                                            **FAULT_TIMEOUTS)) as a:
        yield a


def faulty(fault: Fault) -> Callable[[CaseEnv], AbstractAsyncContextManager[TTSAdapter]]:
    @asynccontextmanager
    async def factory(env: CaseEnv) -> AsyncIterator[TTSAdapter]:
        async with CoquiTestServer() as srv:
            srv.fault = fault
            async with closing_adapter(make_adapter("coqui", coqui_url=srv.url,
                                                    coqui_voice="p225", **FAULT_TIMEOUTS)) as a:
                yield a

    return factory


CASE = ContractCase(backend="coqui", start=start, refused=refused, timed_out=faulty("stall"),
                    garbage=faulty("garbage"))
