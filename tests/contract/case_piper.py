"""Piper in-process with the bundled joe voice; engine work = runs (a sentence's front, a
decoder window)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from adapters.piper.adapter import PiperAdapter
from server.config import Settings
from tests.contract import CaseEnv, ContractCase, Running, closing_adapter


class CountingPiper(PiperAdapter):
    """Piper that counts its runs on the engine (the unit a cancel must stop at)."""

    runs = 0

    @contextmanager
    def _engine_run(self) -> Iterator[bool]:
        self.runs += 1
        with super()._engine_run() as alone:
            yield alone


@asynccontextmanager
async def start(env: CaseEnv) -> AsyncIterator[Running]:
    adapter = CountingPiper.from_options(Settings().model_dump())
    async with closing_adapter(adapter):
        yield Running(adapter, work_done=lambda: adapter.runs)


CASE = ContractCase(backend="piper", start=start)
