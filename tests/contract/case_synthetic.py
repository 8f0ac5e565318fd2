"""The synthetic engine, paced at 10x real time so a cancel lands mid-stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from adapters.synthetic import SyntheticAdapter, SyntheticKnobs
from tests.contract import CaseEnv, ContractCase, Running, closing_adapter


@asynccontextmanager
async def start(env: CaseEnv) -> AsyncIterator[Running]:
    adapter = SyntheticAdapter(SyntheticKnobs(rtf=10.0))
    async with closing_adapter(adapter):
        yield Running(adapter, work_done=lambda: adapter.chunks_made)


CASE = ContractCase(backend="synthetic", start=start)
