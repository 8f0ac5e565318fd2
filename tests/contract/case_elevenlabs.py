"""elevenlabs against a second Morpheus (Piper behind its ElevenLabs face) on another port.

Faults come from a small server on the same route: silent, or answering random bytes labelled
`audio/mpeg` when raw PCM was asked for. Cancel is checked on the second Morpheus's own
connection count.
"""

from __future__ import annotations  # noqa: I001 (tests.upstream_server comes with the contract test)

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
        adapter = make_adapter("elevenlabs", elevenlabs_base_url=root)
        async with closing_adapter(adapter):
            yield Running(adapter, live=lambda: len(runner.server.connections)
                          if runner.server else 0)


@asynccontextmanager
async def refused(env: CaseEnv) -> AsyncIterator[TTSAdapter]:
    async with closing_adapter(make_adapter(
            "elevenlabs", elevenlabs_base_url=refused_url(), **FAULT_TIMEOUTS)) as adapter:
        yield adapter


def faulty(fault: Fault):  # noqa: ANN201
    @asynccontextmanager
    async def factory(env: CaseEnv) -> AsyncIterator[TTSAdapter]:
        async with FaultyRoute("/v1/text-to-speech/{voice}/stream", fault) as srv:
            async with closing_adapter(make_adapter(
                    "elevenlabs", elevenlabs_base_url=srv.url, **FAULT_TIMEOUTS)) as adapter:
                yield adapter

    return factory


CASE = ContractCase(backend="elevenlabs", start=start, refused=refused,
                    timed_out=faulty("stall"), garbage=faulty("garbage"))
