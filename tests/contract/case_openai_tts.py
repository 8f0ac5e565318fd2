"""openai_tts against a second Morpheus (Piper behind its OpenAI route) on another port.

Faults come from a small server on the same route: silent, or answering "audio/mpeg" that is
random bytes. Cancel is checked on the second Morpheus's own connection count.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from adapters.base import TTSAdapter
from tests.contract import (
    FAULT_TIMEOUTS,
    CaseEnv,
    ContractCase,
    Running,
    closing_adapter,
    make_adapter,
    morpheus_upstream,
)
from tests.upstream_server import Fault, FaultyRoute, refused_url


@asynccontextmanager
async def start(env: CaseEnv) -> AsyncIterator[Running]:
    async with morpheus_upstream(env) as (root, runner):
        adapter = make_adapter("openai_tts", openai_tts_base_url=root + "/v1")
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
        async with FaultyRoute("/v1/audio/speech", fault) as srv:
            async with closing_adapter(make_adapter(
                    "openai_tts", openai_tts_base_url=srv.url + "/v1", **FAULT_TIMEOUTS)) as a:
                yield a

    return factory


CASE = ContractCase(backend="openai_tts", start=start, refused=refused,
                    timed_out=faulty("stall"), garbage=faulty("garbage"))
