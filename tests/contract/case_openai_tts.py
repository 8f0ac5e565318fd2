"""openai_tts against a second Morpheus (Piper behind its OpenAI route) on another port.

Faults come from a small server on the same route: silent, or answering "audio/mpeg" that is
random bytes. Cancel is checked on the second Morpheus's own connection count.
"""

from __future__ import annotations

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
async def morpheus_upstream(env: CaseEnv) -> AsyncIterator[tuple[str, web.AppRunner]]:
    """A second Morpheus on 127.0.0.1 speaking Piper; yields its /v1 base URL and runner."""
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
        yield f"http://127.0.0.1:{port}/v1", runner
    finally:
        await runner.cleanup()


class FaultySpeechServer(UpstreamTestServer):
    """POST /v1/audio/speech that only ever fails, the way `fault` says."""

    def __init__(self, fault: Fault) -> None:
        super().__init__()
        self.fault = fault

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/audio/speech", self.speech)

    async def speech(self, request: web.Request) -> web.StreamResponse:
        self.record(request, await request.json())
        answer = await self.injected_fault(request, "audio/mpeg")
        return answer or web.json_response({"error": "no fault set"}, status=500)


@asynccontextmanager
async def start(env: CaseEnv) -> AsyncIterator[Running]:
    async with morpheus_upstream(env) as (base, runner):
        adapter = make_adapter("openai_tts", openai_tts_base_url=base)
        async with closing_adapter(adapter):
            yield Running(adapter, live=lambda: len(runner.server.connections)
                          if runner.server else 0)


@asynccontextmanager
async def refused(env: CaseEnv) -> AsyncIterator[TTSAdapter]:
    async with closing_adapter(make_adapter(
            "openai_tts", openai_tts_base_url=refused_url() + "/v1", **FAULT_TIMEOUTS)) as a:
        yield a


def faulty(fault: Fault):  # noqa: ANN201
    @asynccontextmanager
    async def factory(env: CaseEnv) -> AsyncIterator[TTSAdapter]:
        async with FaultySpeechServer(fault) as srv:
            async with closing_adapter(make_adapter(
                    "openai_tts", openai_tts_base_url=srv.url + "/v1", **FAULT_TIMEOUTS)) as a:
                yield a

    return factory


CASE = ContractCase(backend="openai_tts", start=start, refused=refused,
                    timed_out=faulty("stall"), garbage=faulty("garbage"))
