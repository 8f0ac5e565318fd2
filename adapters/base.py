"""The adapter contract: what every TTS engine takes (TTSInput) and gives (AudioChunk)."""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

PIPELINE_RATE_HZ = 24_000  # everything after the adapter is 24 kHz mono s16le
SAMPLE_WIDTH_BYTES = 2


@dataclass(frozen=True)
class Sampling:
    """LLM sampling knobs for token engines; None means the backend's configured default."""

    temperature: float | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class TTSInput:
    """One segment of text to speak, with everything an engine may need to speak it."""

    text: str
    voice: str | None = None
    language: str | None = None
    speed: float = 1.0  # 1.0 = natural rate; engines with native speed control apply it
    emotion_tags: tuple[str, ...] = ()
    sampling: Sampling = field(default_factory=Sampling)
    target_chunk: int | None = None  # in the adapter's chunk_unit (tokens, or ms of audio)
    low_latency: bool = False  # smallest first chunk, flush early, no coalescing
    # A 24 kHz mono WAV of the voice to speak in (a stored clone, server/voices), for engines
    # whose Capabilities.clones; `voice` is then the clone's id (stable: a cache key).
    reference_audio: str | None = None
    # Live: ms of audio ahead of the listener's playback right now (None: unknown). Engines
    # that trade latency for cost within a segment (SNAC windows) size their steps by it.
    buffer_ms: Callable[[], float] | None = None


@dataclass(frozen=True)
class WordTiming:
    """When a word of the segment is spoken, in ms from the segment's first sample (the
    engine's own audio, before any resampling or time-stretch by the pipeline)."""

    text: str  # the word as it stands in the segment's text
    start_ms: float
    end_ms: float


@dataclass(frozen=True)
class AudioChunk:
    """A piece of audio: signed 16-bit little-endian mono PCM at `sample_rate_hz`.

    `words` are the timings of the words that start in this chunk, for engines that know them
    (see Capabilities.word_timings); the orchestrator estimates them for the others.
    """

    pcm: bytes
    sample_rate_hz: int = PIPELINE_RATE_HZ
    is_final: bool = False
    words: tuple[WordTiming, ...] = ()

    @property
    def samples(self) -> int:
        return len(self.pcm) // SAMPLE_WIDTH_BYTES

    @property
    def duration_ms(self) -> float:
        return 1000.0 * self.samples / self.sample_rate_hz


@dataclass(frozen=True)
class Voice:
    """A voice an adapter can speak with."""

    id: str
    name: str
    language: str = "en"
    gender: str | None = None
    description: str = ""
    backend: str = ""


@dataclass(frozen=True)
class Capabilities:
    """What an engine declares about itself; the orchestrator sizes its work from this.

    Fixed when the adapter is built: what is learned later (an upstream's voices and their
    languages, the rate a voice speaks at) belongs to the voices and to each chunk's
    `sample_rate_hz`, which wins over `native_rate_hz` (the rate the engine usually speaks at).
    """

    native_rate_hz: int
    streams_sub_sentence: bool = False  # yields audio before a segment is fully synthesized
    # a cut inside a sentence is heard (its prosody spans its input) and its first audio does
    # not grow with the segment: the first segment is a whole sentence where one fits
    whole_sentences: bool = False
    chunk_unit: Literal["tokens", "segment"] = "segment"
    languages: tuple[str, ...] = ("en",)
    native_speed: bool = False  # applies TTSInput.speed itself; else the pipeline time-stretches
    emotion_tags: tuple[str, ...] = ()
    word_timings: bool = False  # chunks carry exact WordTimings (else they are estimated)
    phonemes: bool = False  # takes IPA inline as `[[...]]` (a lexicon's or SSML's phonemes)
    normalizes_text: bool = False  # reads numbers, dates, URLs well itself (a hosted API)
    clones: bool = False  # speaks in the voice of TTSInput.reference_audio


@dataclass(frozen=True)
class Health:
    ready: bool
    backend: str
    loader: str = ""
    vram_mb: float | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "backend": self.backend,
            "loader": self.loader,
            "vram_mb": self.vram_mb,
            "reason": self.reason,
        }


class TTSAdapter(ABC):
    """One engine behind one streaming method.

    Lifecycle: `from_options(settings)` (cheap, no I/O) -> `warmup()` (load models, connect)
    -> any number of concurrent `synth_stream()` calls -> `aclose()`. `capabilities` never
    changes after construction.

    `synth_stream(req)` yields AudioChunks for `req.text` in order, at the engine's native rate,
    the last one with `is_final=True`. It never blocks the event loop: blocking inference runs in
    a thread one chunk at a time so that cancellation (the consumer closing the iterator, or its
    task being cancelled) lands between chunks and stops the engine within one chunk, closing
    any upstream connection. Failures raise a `TTSError` subclass, never an empty stream.
    Adapters do not measure, retry or re-frame: the orchestrator does.
    """

    name: ClassVar[str] = "base"
    capabilities: Capabilities
    # How many chunks the engine makes well at once; the orchestrator grants engine time to
    # streams earliest-deadline-first within this many slots. None = no limit (remote APIs).
    concurrency: int | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        """Build the adapter from the flat settings mapping (`Settings.model_dump()` of
        server/config.py: every key present, values validated; each adapter reads its own
        keys with `options[key]`, the settings being the one place their defaults are
        stated). The default is for adapters without settings."""
        return cls()

    async def warmup(self) -> None:  # noqa: B027 (optional hook)
        """Load models / open connections so the first request is fast. Idempotent."""

    async def health(self) -> Health:
        return Health(ready=True, backend=self.name)

    def voices(self) -> list[Voice]:
        return []

    def default_voice(self) -> str | None:
        voices = self.voices()
        return voices[0].id if voices else None

    def accepts_voice(self, voice: str) -> bool:
        """Whether `voice` can be asked for: one of `voices()`, or anything when it lists none;
        an engine may accept more than it lists (Kokoro's blends, `a(2)+b(1)`)."""
        ids = {v.id for v in self.voices()}
        return voice in ids or not ids

    def languages(self) -> tuple[str, ...]:
        """The languages it speaks now: the capabilities' own, then those of the voices it
        lists (an upstream's catalogue, learned after construction), as base codes."""
        out = list(self.capabilities.languages)
        learned = {v.language.split("-")[0] for v in self.voices() if v.language}
        return (*out, *sorted(learned - set(out)))

    def open_session(self) -> AdapterSession | None:
        """A conversation for one whole Morpheus stream, for engines that do better with one
        upstream connection per stream and text arriving in pieces (the orchestrator asks for
        it on incremental streams: WebSocket and WebRTC sessions). None: segment by segment."""
        return None

    def upstreams(self) -> list[dict[str, Any]]:
        """Each upstream's state for `/adapters` (network adapters); empty for in-process ones."""
        return []

    @abstractmethod
    def synth_stream(self, req: TTSInput) -> AsyncIterator[AudioChunk]:
        """Speak `req.text`; see the class docstring for the streaming contract."""

    async def aclose(self) -> None:  # noqa: B027 (optional hook)
        """Release models and connections. Streams still running may fail afterwards."""


class AdapterSession(ABC):
    """One upstream conversation spanning a stream's segments (see `open_session`).

    `synth_stream(req)` speaks one segment over the shared connection, with the same contract
    as `TTSAdapter.synth_stream`; the orchestrator calls it for one segment at a time, in order.
    `aclose()` ends the conversation and its connection; it is called once, when the stream
    ends, fails over or is cancelled.
    """

    @abstractmethod
    def synth_stream(self, req: TTSInput) -> AsyncIterator[AudioChunk]:
        """Speak one segment over the session's connection."""

    @abstractmethod
    async def aclose(self) -> None:
        """End the conversation; a segment still streaming stops."""


T = TypeVar("T")
_DONE = object()


async def iterate_in_thread(
    make_iter: Callable[[], Iterator[T]], lock: threading.Lock | None = None
) -> AsyncIterator[T]:
    """Drive a blocking iterator from a worker thread, one item per hop.

    Each `next()` runs in a thread (holding `lock` if given, so a non-thread-safe model is
    used by one stream at a time per step). Cancelling the consumer stops after the item in
    flight: the iterator is closed in the thread once that item is done, and nothing keeps
    running for it. The consumer is not made to wait for that item.
    """

    it: Iterator[T] | None = None
    guard = threading.Lock()  # next() and close() never overlap on the same iterator

    def step() -> Any:
        nonlocal it
        with guard:
            if lock is not None:
                lock.acquire()
            try:
                if it is None:
                    it = make_iter()
                return next(it, _DONE)
            finally:
                if lock is not None:
                    lock.release()

    def close() -> None:
        with guard:
            closer = getattr(it, "close", None)
            if closer is not None:
                closer()

    finished = False
    try:
        while True:
            item = await asyncio.to_thread(step)
            if item is _DONE:
                finished = True
                return
            yield item
    finally:
        if not finished:
            asyncio.get_running_loop().run_in_executor(None, close)
