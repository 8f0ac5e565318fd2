"""Cases for the one adapter contract test (tests/test_adapter_contract.py).

Each backend brings its own module here, `case_<backend>.py`, exposing `CASE`, a
`ContractCase`: how to start the backend with a real local engine or server, and, for a backend
with an upstream, how to point it at a refused, a silent (timed-out) and a garbage upstream.
The test discovers every module; a backend in adapters.registry.BACKENDS without a case fails
the meta-test. Adding a backend = adding one module, no edit to the test.

    CASE = ContractCase(        # or CASES = [ContractCase(..., variant="a"), ...]
        backend="xtts",
        start=start,          # async context manager (CaseEnv) -> Running
        refused=refused,      # async context manager (CaseEnv) -> TTSAdapter, or None
        timed_out=timed_out,  # same, an upstream that accepts and never answers
        garbage=garbage,      # same, an upstream that answers bytes that are not audio
    )
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters import registry
from adapters.base import TTSAdapter
from adapters.errors import MalformedAudio
from server.app import create_app
from server.config import Settings

SPEAKABLE = "Hello there, this is a short check of the adapter contract."
LONG_TEXT = ("The first sentence is here to be heard. The second one should never be spoken "
             "at all. Nor should the third, which goes on for a while longer than the others. "
             "And the fourth one closes the paragraph with a little more to say.")
# Upstream timeouts for the fault cases: short, so a silent upstream fails fast.
FAULT_TIMEOUTS = {"upstream_connect_timeout_s": 1.0, "upstream_read_timeout_s": 0.8}


@dataclass(frozen=True)
class CaseEnv:
    """Where a case may write: `tmp` is the test's own folder, `shared` lives for the whole
    session (for expensive fixtures such as a model checkpoint, built once)."""

    tmp: Path
    shared: Path


@dataclass
class Running:
    """A started backend, and what the test can observe of its engine or server."""

    adapter: TTSAdapter
    # Upstream connections open on the server side (or engine processes alive): after a
    # cancel they must all close. None for an engine with neither.
    live: Callable[[], int] | None = None
    # Units of engine work done so far (chunks made or sent): after a cancel it may grow by
    # at most one (the chunk in flight). None when the engine cannot be observed.
    work_done: Callable[[], int] | None = None
    # Audio the server sent for its latest request, in ms at its own protocol rate: the
    # adapter's chunks, read at the rate they declare, must last as long.
    server_audio_ms: Callable[[], float] | None = None


Start = Callable[[CaseEnv], AbstractAsyncContextManager[Running]]
Fault = Callable[[CaseEnv], AbstractAsyncContextManager[TTSAdapter]]


@dataclass(frozen=True)
class ContractCase:
    backend: str
    start: Start
    variant: str = ""  # when one backend has several cases (e.g. two protocols)
    refused: Fault | None = None
    timed_out: Fault | None = None
    garbage: Fault | None = None
    garbage_errors: tuple[type[Exception], ...] = (MalformedAudio,)
    ms_per_char: tuple[float, float] = (25.0, 250.0)  # plausible speech length for the text
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.backend}[{self.variant}]" if self.variant else self.backend

    def faults(self) -> dict[str, Fault]:
        return {name: f for name, f in (("refused", self.refused), ("timed_out", self.timed_out),
                                        ("garbage", self.garbage)) if f is not None}


def make_adapter(backend: str, **settings: Any) -> TTSAdapter:
    """The backend built the way the server builds it: from validated settings."""
    return registry.create(backend, Settings(**settings).model_dump())


@asynccontextmanager
async def closing_adapter(adapter: TTSAdapter) -> AsyncIterator[TTSAdapter]:
    try:
        yield adapter
    finally:
        await adapter.aclose()


@asynccontextmanager
async def morpheus_upstream(env: CaseEnv) -> AsyncIterator[tuple[str, web.AppRunner]]:
    """A second Morpheus on 127.0.0.1 speaking Piper (the upstream of the backends that talk
    to another Morpheus); yields its root URL and runner."""
    settings = Settings(tts_backend="piper", outputs_dir=env.tmp / "upstream-outputs",
                        webrtc_host_addresses="127.0.0.1")
    # Not warmed at start: a test that never speaks (faults, punctuation) need not wait.
    runner = web.AppRunner(create_app(settings, env_file=None, warm=False),
                           handler_cancellation=True, shutdown_timeout=2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", runner
    finally:
        await runner.cleanup()


def discover() -> list[ContractCase]:
    """Every case of every `case_*` module in this package (`CASE`, or a list `CASES`)."""
    cases: list[ContractCase] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.name.startswith("case_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found = getattr(module, "CASES", None) or [getattr(module, "CASE", None)]
        for case in found:
            if not isinstance(case, ContractCase):
                raise TypeError(f"{module.__name__} has no CASE = ContractCase(...)")
            cases.append(case)
    return cases
