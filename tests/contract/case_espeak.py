"""espeak-ng as a subprocess; after a cancel no espeak-ng child may be left running."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.contract import CaseEnv, ContractCase, Running, closing_adapter, make_adapter


def live_children(name: str) -> int:
    """Processes called `name` whose parent is this process (zombies not counted)."""
    me, count = os.getpid(), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # it ended while we looked
        comm = text[text.index("(") + 1 : text.rindex(")")]
        state, ppid = text[text.rindex(")") + 2 :].split()[:2]
        if comm == name and int(ppid) == me and state != "Z":
            count += 1
    return count


@asynccontextmanager
async def start(env: CaseEnv) -> AsyncIterator[Running]:
    adapter = make_adapter("espeak")
    async with closing_adapter(adapter):
        yield Running(adapter, live=lambda: live_children("espeak-ng"))


CASE = ContractCase(backend="espeak", start=start)
