"""Test harness for the orchestrator: a listener with exact playout and a pool of given adapters."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from adapters.base import TTSAdapter
from server.config import Settings
from server.core.backends import BackendPool
from server.core.events import AudioOut, Degraded, SegmentDone
from server.core.orchestrator import Orchestrator
from server.core.stream import StreamSpec
from server.metrics import Metrics
from server.settings_store import SettingsStore
from tests import looptime_compat

# The orchestrator runs on looptime's virtual clock in tests and the benchmark: keep its timers
# on the clock's ticks, or looptime < 0.8 (Python 3.10) spins forever on the first odd sleep.
looptime_compat.install()


class Listener:
    """Plays audio at exactly real time on the loop's clock; knows its buffer exactly.

    Playback starts with the first audio and stalls (an underflow) when the buffer is empty.
    """

    playback_known = True

    def __init__(self) -> None:
        self.sent_ms = 0.0
        self.played_ms = 0.0
        self._last: float | None = None
        self.starved_ms = 0.0

    def _advance(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._last is not None and self.sent_ms > 0:  # playback starts with the first audio
            elapsed = 1000 * (now - self._last)
            playable = self.sent_ms - self.played_ms
            self.played_ms += min(elapsed, playable)
            self.starved_ms += max(0.0, elapsed - playable)
        self._last = now

    def audio_sent(self, ms: float) -> None:
        self._advance()
        self.sent_ms += ms

    def buffer_ms(self) -> float:
        self._advance()
        return self.sent_ms - self.played_ms

    def stalled_ms(self) -> float:
        return 0.0  # known exactly: nothing modelled


class FixedPool(BackendPool):
    """A BackendPool whose adapters are the given instances (the fallback included)."""

    def __init__(self, settings: Settings, adapters: dict[str, TTSAdapter]) -> None:
        super().__init__(settings)
        self.adapters = adapters

    def known(self, name: str) -> bool:
        return name in self.adapters

    def enabled(self, name: str) -> bool:
        return name in self.adapters

    def instance(self, name: str) -> TTSAdapter:
        return self.adapters[name]


def make_orchestrator(adapters: dict[str, TTSAdapter], **settings: Any) -> Orchestrator:
    # The given adapters may be fakes the registry does not know (Settings refuses unknown
    # backend names): the names are set past validation, the rest of the settings through it.
    names = {"tts_backend": settings.pop("tts_backend", next(iter(adapters))),
             "fallback_backend": settings.pop("fallback_backend", None)}
    s = Settings(**settings).model_copy(update=names)
    return Orchestrator(SettingsStore(s), FixedPool(s, adapters), Metrics())


@dataclass
class Run:
    """What one stream did, as seen by its listener."""

    audio_ms: float = 0.0
    buffer_after_chunk: list[tuple[str, float]] = field(default_factory=list)  # (state, ms)
    buffer_before_chunk: list[float] = field(default_factory=list)
    segments: list[SegmentDone] = field(default_factory=list)
    degraded: list[Degraded] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    chunk_sizes: list[int] = field(default_factory=list)
    ttft_ms: float | None = None
    status: str = ""
    underflows: int = 0
    listener: Listener | None = None


async def narrate(orch: Orchestrator, text: str, spec: StreamSpec | None = None,
                  listener: Listener | None = None, *, chunked_input: int | None = None,
                  consume_delay_s: float = 0.0) -> Run:
    """Speak `text` through the orchestrator into a Listener; record everything."""
    listener = listener or Listener()
    run = Run(listener=listener)
    stream = await orch.open(spec or StreamSpec(), observer=listener)
    if chunked_input:
        async def feed() -> None:
            for i in range(0, len(text), chunked_input):
                stream.push_text(text[i:i + chunked_input])
                await asyncio.sleep(0.01)
            stream.end_input()
        feeder = asyncio.create_task(feed())
    else:
        stream.push_text(text)
        stream.end_input()
        feeder = None
    try:
        async for ev in stream:
            if isinstance(ev, AudioOut):
                run.buffer_before_chunk.append(listener.buffer_ms() - len(ev.pcm) / 48)
                run.buffer_after_chunk.append((stream.rate.state.value, listener.buffer_ms()))
                run.chunk_sizes.append(stream.rate.chunk_size)
                if consume_delay_s:
                    await asyncio.sleep(consume_delay_s)
            elif isinstance(ev, SegmentDone):
                run.segments.append(ev)
            elif isinstance(ev, Degraded):
                run.degraded.append(ev)
    finally:
        await stream.aclose()
        if feeder:
            feeder.cancel()
    run.audio_ms = stream.audio_ms
    run.ttft_ms = stream.ttft_ms
    run.status = stream.status
    run.underflows = stream.underflows
    run.states = [s.value for s in stream.rate.history]
    return run


async def spoken(orch: Orchestrator, text: str,
                 spec: StreamSpec | None = None) -> tuple[Any, list[Any]]:
    """(stream, every event) for `text` spoken through `orch`, the stream closed after."""
    stream = await orch.open(spec or StreamSpec())
    stream.push_text(text)
    stream.end_input()
    events = []
    try:
        async for ev in stream:
            events.append(ev)
    finally:
        await stream.aclose()
    return stream, events


def narration(minutes: float, ms_per_char: float = 60.0) -> str:
    """Prose-like text long enough for `minutes` of synthetic audio."""
    sentences = [
        "The river ran quietly past the old mill, carrying leaves toward the sea.",
        "Nobody in the village remembered when the wheel had last turned.",
        "Dr. Adams said the water was 3.5 degrees warmer than the year before.",
        "Still, the children came every evening, and they listened, and they waited.",
        "Some said the mill would wake again; others laughed, but not unkindly.",
    ]
    out: list[str] = []
    total = 0.0
    i = 0
    while total < minutes * 60_000:
        s = sentences[i % len(sentences)]
        out.append(s)
        total += len(s) * ms_per_char
        i += 1
    return " ".join(out)


def front_text(text: str, **options: object) -> str:
    """What the text front end makes of `text` (default options), one space apart: what a
    stream's segments say for it."""
    from dsp.chunker import normalize_whitespace
    from dsp.textfront import FrontOptions, TextFront, spoken_text

    front = TextFront(FrontOptions(**options))  # type: ignore[arg-type]
    return normalize_whitespace(spoken_text(front.push(text) + front.end()))
