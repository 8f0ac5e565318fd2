"""command with espeak-ng --stdout as the engine, its live processes counted from /proc; a
command that does not exist (refused), one that never writes (timed out) and one that writes
the text back instead of audio (garbage)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from adapters.base import TTSAdapter
from adapters.errors import EngineError, MalformedAudio
from tests.contract import (
    FAULT_TIMEOUTS,
    CaseEnv,
    ContractCase,
    Running,
    closing_adapter,
    make_adapter,
)
from tests.procs import live_children


@asynccontextmanager
async def start(env: CaseEnv) -> AsyncIterator[Running]:
    adapter = make_adapter("command", command_tts="espeak-ng --stdout -v {voice}",
                           command_tts_voices="en-us")
    await adapter.warmup()
    async with closing_adapter(adapter):
        yield Running(adapter, live=lambda: len(live_children(name="espeak-ng")))


def command(line: str) -> Callable[[CaseEnv], AbstractAsyncContextManager[TTSAdapter]]:
    @asynccontextmanager
    async def factory(env: CaseEnv) -> AsyncIterator[TTSAdapter]:
        async with closing_adapter(make_adapter("command", command_tts=line,
                                                **FAULT_TIMEOUTS)) as a:
            yield a

    return factory


CASE = ContractCase(backend="command", start=start, refused=command("no-such-tts-engine --speak"),
                    timed_out=command("sleep 60"), garbage=command("cat"),
                    garbage_errors=(MalformedAudio, EngineError))
