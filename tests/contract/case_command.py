"""Contract case for the `command` backend: espeak-ng --stdout as the engine, its live
processes counted from /proc; a command that does not exist (refused), one that never writes
(timed out) and one that writes text instead of audio (garbage)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from adapters.command import CommandAdapter
from tests.procs import live_children


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
        yield Served(adapter, lambda: len(live_children(name="espeak-ng")))

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
