"""Contract case for the `command` backend: espeak-ng --stdout as the engine, its live
processes counted from /proc; a command that does not exist (refused), one that never writes
(timed out) and one that writes text instead of audio (garbage)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from adapters.command import CommandAdapter


def live_children(name: str) -> int:
    """Our child processes called `name` that are still running (not zombies)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if comm == name and int(ppid) == os.getpid() and state != "Z":
            count += 1
    return count


@dataclass
class Served:
    """A running backend: the adapter, and how many engine processes are open."""

    adapter: CommandAdapter
    open_connections: Callable[[], int]


class CommandCase:
    backend = "command"
    native_rate_hz = 22050  # espeak-ng's WAV header

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[Served]:
        adapter = CommandAdapter("espeak-ng --stdout -v {voice}", voices=["en-us"])
        await adapter.warmup()
        yield Served(adapter, lambda: live_children("espeak-ng"))

    @asynccontextmanager
    async def refused(self) -> AsyncIterator[CommandAdapter]:
        yield CommandAdapter("no-such-tts-engine --speak")

    @asynccontextmanager
    async def timed_out(self) -> AsyncIterator[CommandAdapter]:
        yield CommandAdapter("sleep 60", read_timeout_s=0.5)

    @asynccontextmanager
    async def garbage(self) -> AsyncIterator[CommandAdapter]:
        yield CommandAdapter("cat")  # echoes the text: not a WAV stream


CASE = CommandCase()

__all__ = ["CASE", "CommandCase", "Served"]
