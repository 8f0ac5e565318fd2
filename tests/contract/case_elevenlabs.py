"""elevenlabs against a second Morpheus (Piper behind its ElevenLabs face) on another port.

Faults come from a small server on the same route: silent, or answering random bytes labelled
`audio/mpeg` when raw PCM was asked for. Cancel is checked on the second Morpheus's own
connection count.
"""

from __future__ import annotations  # noqa: I001 (tests.upstream_server comes with the contract test)

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from adapters.base import TTSAdapter
from server.app import create_app
from server.config import Settings
from tests.contract import (
    FAULT_TIMEOUTS,
    CaseEnv,
    ContractCase,
    Running,
    closing_adapter,
    make_adapter,
)
from tests.upstream_server import Fault, UpstreamTestServer, refused_url


@asynccontextmanager
async def start(env: CaseEnv) -> AsyncIterator[Running]:
    settings = Settings(tts_backend="piper", outputs_dir=env.tmp / "upstream-outputs",
                        webrtc_host_addresses="127.0.0.1")
    # Not warmed at start: a test that never speaks (faults, punctuation) need not wait.
    runner = web.AppRunner(create_app(settings, env_file=None, warm=False),
                           handler_cancellation=True, shutdown_timeout=2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        adapter = make_adapter("elevenlabs", elevenlabs_base_url=f"http://127.0.0.1:{port}")
        async with closing_adapter(adapter):
            yield Running(adapter, live=lambda: len(runner.server.connections)
                          if runner.server else 0)
    finally:
        await runner.cleanup()


class FaultyElevenLabs(UpstreamTestServer):
    """POST /v1/text-to-speech/{voice}/stream that only ever fails, the way `fault` says."""

    def __init__(self, fault: Fault) -> None:
        super().__init__()
        self.fault = fault

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/text-to-speech/{voice}/stream", self.stream)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        self.record(request, await request.json())
        answer = await self.injected_fault(request, "audio/mpeg")
        return answer or web.json_response({"detail": "no fault set"}, status=500)


@asynccontextmanager
async def refused(env: CaseEnv) -> AsyncIterator[TTSAdapter]:
    async with closing_adapter(make_adapter(
            "elevenlabs", elevenlabs_base_url=refused_url(), **FAULT_TIMEOUTS)) as adapter:
        yield adapter


def faulty(fault: Fault):  # noqa: ANN201
    @asynccontextmanager
    async def factory(env: CaseEnv) -> AsyncIterator[TTSAdapter]:
        async with FaultyElevenLabs(fault) as srv:
            async with closing_adapter(make_adapter(
                    "elevenlabs", elevenlabs_base_url=srv.url, **FAULT_TIMEOUTS)) as adapter:
                yield adapter

    return factory


CASE = ContractCase(backend="elevenlabs", start=start, refused=refused,
                    timed_out=faulty("stall"), garbage=faulty("garbage"))
