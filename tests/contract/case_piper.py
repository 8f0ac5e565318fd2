"""Piper in-process with the bundled joe voice; engine work = sentences run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from adapters.piper import PiperAdapter
from tests.contract import CaseEnv, ContractCase, Running, closing_adapter


class CountingPiper(PiperAdapter):
    """Piper that counts the sentences it synthesises (the unit a cancel must stop at)."""

    runs = 0

    def _run_sentence(self, *args: Any, **kwargs: Any) -> Any:
        self.runs += 1
        return super()._run_sentence(*args, **kwargs)


@asynccontextmanager
async def start(env: CaseEnv) -> AsyncIterator[Running]:
    adapter = CountingPiper()
    async with closing_adapter(adapter):
        yield Running(adapter, work_done=lambda: adapter.runs)


CASE = ContractCase(backend="piper", start=start)
