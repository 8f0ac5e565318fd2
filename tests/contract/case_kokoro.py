"""Kokoro in-process with the int8 model and the Japanese voices from PyPI (reading English);
engine work = runs (a voice's calibration, a batch's front, a generator window)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from adapters.kokoro import KokoroAdapter
from tests.contract import CaseEnv, ContractCase, Running, closing_adapter


class CountingKokoro(KokoroAdapter):
    """Kokoro that counts its runs on the engine (the unit a cancel must stop at)."""

    runs = 0

    @contextmanager
    def _engine_run(self, force_alone: bool | None = None) -> Iterator[bool]:
        self.runs += 1
        with super()._engine_run(force_alone) as alone:
            yield alone


@asynccontextmanager
async def start(env: CaseEnv) -> AsyncIterator[Running]:
    adapter = CountingKokoro()
    async with closing_adapter(adapter):
        yield Running(adapter, work_done=lambda: adapter.runs)


CASE = ContractCase(backend="kokoro", start=start)
