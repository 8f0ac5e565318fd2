"""One response: text deltas in, paced 24 kHz audio and word timings out, interruptible.

Per stream: chunker -> [the engine's EDF gate] -> adapter.synth_stream(segment) -> the audio
chain (resample, stretch, stitch: server/core/audio_chain.py) -> a bounded queue (prefetch of
one chunk) -> the transport. What to do when the engine fails is server/core/recovery.py; who
gets a slot is server/core/admission.py; the orchestrator (server/core/orchestrator.py) owns
the streams.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from adapters.base import (
    AdapterSession,
    AudioChunk,
    Capabilities,
    Sampling,
    TTSAdapter,
    TTSInput,
)
from adapters.errors import BackendTimeout, BadRequest, NoAudioError, TTSError
from dsp.chunker import EMOTION_TAGS
from dsp.textfront import FrontOptions, LexiconEntry
from server.core.audio_chain import AudioChain
from server.core.events import (
    BYTES_PER_MS,
    AudioOut,
    BufferObserver,
    Degraded,
    SegmentDone,
    StreamEvent,
    WordMark,
    Words,
)
from server.core.pacing import Pacing
from server.core.rate import RateController, RateState, profile_for
from server.core.recovery import PartialFailure, speak_segment
from server.core.scheduler import EdfGate
from server.core.text_input import EngineText, Segment, TextInput
from server.core.timings import SegmentClock
from server.metrics import Metrics

log = logging.getLogger("morpheus.orchestrator")

HOLD_TAIL_AHEAD_MS = 250.0  # lead past which every chunk keeps its crossfade tail back
CLOSE_RETRY_S = 0.2  # aclose() cancels the producer again this often until it ends
_END = object()


@dataclass(frozen=True)
class StreamSpec:
    backend: str | None = None  # None = the active backend
    voice: str | None = None
    speed: float = 1.0
    low_latency: bool = False
    language: str | None = None
    sampling: Sampling = field(default_factory=Sampling)
    request_id: str | None = None
    transport: str = "http"
    incremental: bool = False  # text arrives in pieces (WS, WebRTC): adapters may keep a session
    normalize: bool | None = None  # the text front end's normalization; None: the server's
    lexicon: tuple[LexiconEntry, ...] = ()  # this request's entries, before LEXICON_FILE's
    # Set by the voice library when `voice` named a stored voice (server/core/voicebook.py):
    voice_id: str | None = None  # the stored voice's id, as the client named it
    reference_audio: str | None = None  # a clone's reference WAV (engines that clone)


class Owner(Protocol):
    """What a stream needs of the orchestrator that opened it (server/core/orchestrator.py)."""

    metrics: Metrics

    @property
    def settings(self) -> Any: ...

    def gate(self, adapter: TTSAdapter) -> EdfGate:
        """The engine's earliest-deadline-first gate, shared by every stream on it."""

    def engine_busy(self, adapter: TTSAdapter) -> bool: ...

    def text_options(self, spec: StreamSpec, adapter: TTSAdapter, voice: str) -> FrontOptions:
        """How the text front end treats this stream's text (settings, request, engine)."""

    async def fallback_for(self, backend: str, error: TTSError) -> tuple[str, TTSAdapter]:
        """(name, ready adapter) of the fallback; raises `error` when there is none."""

    def moved(self, stream: Stream, old: str, new: str) -> None: ...

    def first_audio(self, stream: Stream) -> None: ...

    def count_underflow(self, backend: str) -> None: ...

    def finished(self, stream: Stream) -> None: ...


class Stream:
    """One response: push text deltas in, iterate events out, interrupt at any time.

    The stream waits while input is open and nothing is buffered; it ends after `end_input()`
    once all audio is out. Iteration raises a TTSError when the backend (and the fallback)
    failed. `interrupt()` is barge-in: synthesis stops, queued audio is dropped.
    """

    def __init__(self, orch: Owner, spec: StreamSpec, adapter: TTSAdapter,
                 observer: BufferObserver, voice: str | None) -> None:
        self.orch = orch
        self.spec = spec
        self.id = spec.request_id or uuid.uuid4().hex[:16]
        self.backend = adapter.name
        self.voice = voice or ""
        self.degraded = False
        self.status = "running"
        self.ttft_ms: float | None = None
        self.audio_ms = 0.0
        self.underflows = 0
        self.words: list[WordMark] = []  # timings of the words yielded so far
        self._adapter = adapter
        self._text = TextInput(orch.text_options(spec, adapter, self.voice))
        self._segment = Segment("", 0)  # the one being spoken
        self._text_ready = asyncio.Event()
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)  # prefetch: one chunk ahead
        self._loop = asyncio.get_running_loop()
        self._t_open = self._loop.time()
        self._t_first: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._audio = AudioChain(spec.speed)
        self._pacing = Pacing(observer, self._make_rate(adapter))
        self._state_names: set[str] = set()
        self._stall_ms = orch.settings.stall_timeout_ms
        self._segments = 0
        self._spoke_nothing = True
        self._ms_per_char = 65.0  # speech pace, learned per stream; places mid-segment resumes
        self._session: AdapterSession | None = None  # the adapter's per-stream conversation
        self._closed = False  # aclose() was called: produce nothing more
        self._made_ms = 0.0  # audio handed to the queue (ahead of audio_ms, which is taken)

    @property
    def adapter(self) -> TTSAdapter:
        """The engine speaking now (the fallback's after a failover)."""
        return self._adapter

    @property
    def rate(self) -> RateController:
        return self._pacing.rate

    @property
    def observer(self) -> BufferObserver:
        return self._pacing.observer

    @property
    def made_ms(self) -> float:
        """Audio the engine has made for this stream so far (taken by the sink or not)."""
        return self._made_ms

    # -- text input

    @property
    def voice_id(self) -> str:
        """The voice as the client knows it: the stored voice's id while the stream speaks
        it (not after a failover), else the engine's voice."""
        return self.spec.voice_id if self.spec.voice_id and not self.degraded else self.voice

    def push_text(self, text: str) -> None:
        """Append the client's text as it came: the front end (dsp/textfront) strips markup,
        reads numbers and symbols as words, and drops what no engine can encode."""
        self._text.push(text)
        self._text_ready.set()

    def flush(self) -> None:
        self._text.flush()
        self._text_ready.set()

    def end_input(self) -> None:
        self._text.end()
        self._text_ready.set()

    # -- output

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[StreamEvent]:
        if self._task is None:
            self._task = asyncio.create_task(self._produce(), name=f"stream-{self.id}")
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, AudioOut):
                ms = len(item.pcm) / BYTES_PER_MS
                self._pacing.taken(ms)
                if self._t_first is None:
                    self._t_first = self._loop.time()
                    self.ttft_ms = 1000 * (self._t_first - self._t_open)
                    self.orch.first_audio(self)
                self.audio_ms += ms
            elif isinstance(item, Words):
                self.words.extend(item.words)
            yield item

    def heard_text(self, played_ms: float) -> str:
        """The client's own text heard in full by `played_ms` of this response's audio (with
        its markup): what a voice agent keeps in its history when it is cut off."""
        return self._text.marks.heard_text(played_ms)

    def interrupt(self) -> float:
        """Barge-in / cancel: stop synthesis now, drop queued audio; returns ms delivered."""
        if self.status == "running":
            self.status = "cancelled"
        self._closed = True  # the producer stops at its next chunk even if the cancel is lost
        if self._task is not None:
            self._task.cancel()
        self._audio.reset()
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(_END)
        return self.audio_ms

    async def aclose(self) -> None:
        """Stop production and free the stream's slot; safe to call more than once.

        A cancellation can be lost (Python 3.11's wait_for drops one that lands as the awaited
        chunk completes), so the producer is also told by `_closed` and woken from a full
        queue, and cancelled again until it ends. The slot is freed whatever happens here.
        """
        task = self._task
        try:
            if task is not None and not task.done():
                if self.status == "running":
                    self.status = "cancelled"
                self._closed = True
                while not task.done():
                    while not self._queue.empty():  # wake a producer blocked on a full queue
                        self._queue.get_nowait()
                    task.cancel()
                    await asyncio.wait({task}, timeout=CLOSE_RETRY_S)
        finally:
            self.orch.finished(self)

    # -- the listener

    def ahead_ms(self) -> float:
        """Audio ahead of the listener's playback, counting what is made but not yet taken."""
        return self._pacing.ahead_ms()

    def urgency(self) -> float:
        """For the engine's gate (lower goes first): a stream with no audio yet before every
        other (first audio is what a new listener waits for), then least audio ahead."""
        return self._pacing.urgency_ms() if self._made_ms > 0 else float("-inf")

    def _make_rate(self, adapter: TTSAdapter) -> RateController:
        s = self.orch.settings
        cfg = profile_for(
            adapter.capabilities.chunk_unit, first_tokens=s.snac_first_chunk,
            steady_tokens=s.snac_target_chunk, first_chars=s.first_segment_chars,
            max_chars=s.max_segment_chars, target_ms=s.playback_buffer_ms,
            min_ms=s.buffer_min_ms, max_ms=s.buffer_max_ms, lock=s.chunk_lock,
            # A stream that starts while others hold the engine starts small too: its first
            # chunk then waits behind theirs for less time (earliest deadline first).
            low_latency=self.spec.low_latency or self.orch.engine_busy(adapter),
            sub_sentence=adapter.capabilities.streams_sub_sentence,
            whole_sentences=adapter.capabilities.whole_sentences)
        return RateController(cfg)

    def _check_underflow(self) -> None:
        if self._t_first is not None and self._pacing.ran_dry():
            self.underflows += 1
            self.orch.count_underflow(self.backend)

    def _publish_state(self, buffer_ms: float) -> None:
        m = self.orch.metrics
        m.buffer_ms.labels(self.backend, self.spec.transport).observe(max(0.0, buffer_ms))
        m.chunk_size.labels(self.backend).observe(self.rate.chunk_size)
        state = self.rate.state.value
        if state not in self._state_names:
            self._state_names.add(state)
            log.info("state", extra={**self.log_extra(), "state": state,
                                     "chunk_size": self.rate.chunk_size,
                                     "buffer_ms": round(buffer_ms, 1)})

    # -- production

    async def _emit(self, item: Any) -> None:
        if self._closed:
            raise asyncio.CancelledError  # aclose() ran; its cancel may have been lost
        if isinstance(item, AudioOut):
            self._pacing.queued(len(item.pcm) / BYTES_PER_MS)
            self._made_ms += len(item.pcm) / BYTES_PER_MS
        await self._queue.put(item)

    async def _produce(self) -> None:
        try:
            while True:
                seg = await self._next_segment()
                if seg is None:
                    break
                self._segments += 1
                self._segment = seg
                delivered = await speak_segment(self, seg.text)
                await self._emit(SegmentDone(seg.text, delivered, self.backend))
                if seg.pause_ms:
                    await self._emit(AudioOut(self._audio.silence(seg.pause_ms), self.audio_ms))
            marks = self._text.marks.flush()
            if marks:
                await self._emit(Words(tuple(marks)))
            tail = self._audio.flush()
            if tail:
                await self._emit(AudioOut(tail, self.audio_ms))
            if self._segments and self._spoke_nothing:
                raise NoAudioError("the text produced no audio", backend=self.backend)
            self.status = "completed"
            await self._emit(_END)
        except asyncio.CancelledError:
            raise
        except BadRequest as e:
            self.status = "failed"
            await self._emit(e)
        except TTSError as e:
            self.status = "failed"
            log.warning("stream failed: %s", e, extra=self.log_extra())
            await self._emit(e)
        except Exception as e:  # a bug must not leave the consumer waiting forever
            self.status = "failed"
            log.exception("stream crashed", extra={"request_id": self.id})
            await self._emit(TTSError(f"internal error: {e}", backend=self.backend))
        finally:
            await self._close_session()

    async def _next_segment(self) -> Segment | None:
        unit = self._adapter.capabilities.chunk_unit
        size: int | None = None
        while True:
            buffer_ms = self.ahead_ms()
            if size is None:  # one ramp step per segment, not one per text delta waited for
                size = self.rate.next_size(buffer_ms, started=self._t_first is not None)
            self._publish_state(buffer_ms)
            max_chars = size if unit == "segment" else self.orch.settings.max_segment_chars
            if unit != "segment" and self._t_first is None:
                max_chars = self.orch.settings.first_segment_chars * 2  # token engines stream anyway
            seg = self._text.pop(max_chars)
            if seg is not None and not seg.speakable:
                continue  # "..." between sentences: nothing for an engine to say
            if seg is not None:
                return seg
            if self._text.done:
                if not self._text.has_speech:
                    raise BadRequest("nothing speakable in the input (no letters or digits "
                                     "after control characters are removed)", field="input")
                return None
            self._text_ready.clear()
            await self._wait_for_text()

    async def _wait_for_text(self) -> None:
        """Input is open and everything is spoken: wait for text, but not forever. A client
        that never finishes its input would hold a stream slot; after STREAM_INPUT_TIMEOUT_S
        without new text the input is ended, so what was said completes and the slot frees."""
        timeout_s = self.orch.settings.stream_input_timeout_s
        try:
            await asyncio.wait_for(self._text_ready.wait(), timeout_s)
        except asyncio.TimeoutError:
            log.info("no new text for %.0f s: ending the input", timeout_s,
                     extra=self.log_extra())
            self.orch.metrics.timeouts.labels("input_idle").inc()
            self.end_input()

    # -- recovery's Speaker (server/core/recovery.py)

    @property
    def ms_per_char(self) -> float:
        return self._ms_per_char

    def log_extra(self) -> dict[str, str]:
        return {"request_id": self.id, "backend": self.backend}

    async def attempt(self, text: str, *, smaller: bool) -> float:
        delivered = await self._try_segment(self._adapter, text, smaller=smaller)
        if text and delivered > 0:
            self._ms_per_char = 0.7 * self._ms_per_char + 0.3 * delivered / len(text)
        return delivered

    async def another_upstream(self, error: TTSError) -> None:
        """Same engine, another upstream: not a failover, not degraded; a session reconnects."""
        log.warning("continuing on another %s upstream: %s", self.backend, error,
                    extra=self.log_extra())
        await self._close_session()

    async def fail_over(self, error: TTSError) -> None:
        target, fallback = await self.orch.fallback_for(self.backend, error)
        log.warning("failover %s -> %s: %s", self.backend, target, error, extra=self.log_extra())
        await self._emit(Degraded(self.backend, target, str(error)))
        self.orch.moved(self, self.backend, target)
        await self._close_session()
        self.backend = target
        self._adapter = fallback
        self.degraded = True
        self.voice = fallback.default_voice() or ""
        self._pacing.rate = self._make_rate(fallback)
        self._stall_ms = self.orch.settings.stall_timeout_ms

    # -- one attempt at a segment

    async def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                await session.aclose()
            except Exception:  # closing a broken upstream must not mask the stream's outcome
                log.warning("closing the %s session failed", self.backend, exc_info=True)

    def _source(self, adapter: TTSAdapter) -> TTSAdapter | AdapterSession:
        """Where segments go: the stream's session with the adapter when it keeps one."""
        if self.spec.incremental and self._session is None:
            self._session = adapter.open_session()
        return self._session or adapter

    async def _try_segment(self, adapter: TTSAdapter, text: str, *, smaller: bool) -> float:
        caps = adapter.capabilities
        size = self.rate.chunk_size
        if smaller:
            size = max(self.rate.cfg.min_size, size // 2)
        engine = self._text.for_engine(self._segment, text, phonemes=caps.phonemes)
        voiced = voiced_tags(caps)
        if not voiced >= set(EMOTION_TAGS):  # after a failover to an engine without the first
            engine = _without_tags(engine, voiced)  # one's tags
        req = TTSInput(
            text=engine.text, voice=self.voice or None, language=self.spec.language,
            speed=self.spec.speed, sampling=self.spec.sampling,
            reference_audio=self.spec.reference_audio if caps.clones else None,
            target_chunk=size if caps.chunk_unit == "tokens" else None,
            low_latency=self.spec.low_latency or self.rate.state is RateState.UNDERFLOW,
            buffer_ms=self.ahead_ms)
        self._audio.begin(caps)
        clock = SegmentClock(engine.text, origin_ms=self._made_ms + self._audio.seam_offset_ms(),
                             scale=self._audio.scale, pace_ms_per_char=self._ms_per_char)
        words = _WordCursor(engine)
        gate = self.orch.gate(adapter)
        agen = self._source(adapter).synth_stream(req).__aiter__()
        delivered = 0.0
        try:
            while True:
                await self._pacing.room()
                deadline_s = max(self._stall_ms, self.ahead_ms() + 250) / 1000
                t0 = self._loop.time()
                try:
                    async with gate.slot(self.urgency):
                        chunk: AudioChunk = await asyncio.wait_for(agen.__anext__(), deadline_s)
                except StopAsyncIteration:
                    break
                except asyncio.TimeoutError:
                    err = BackendTimeout(f"{adapter.name}: no audio within {deadline_s * 1000:.0f} ms",
                                         backend=adapter.name)
                    if delivered:
                        raise PartialFailure(err, delivered) from None
                    raise err from None
                except TTSError as e:
                    if delivered:
                        raise PartialFailure(e, delivered) from e
                    raise
                cost_ms = 1000 * (self._loop.time() - t0)
                self.orch.metrics.chunk_ms.labels(adapter.name).observe(cost_ms)
                self._pacing.observe_chunk(len(text) if caps.chunk_unit == "segment" else size,
                                           cost_ms, chunk.duration_ms)
                marks = self._source_marks(words, clock.chunk(chunk))
                if marks:
                    await self._emit(Words(tuple(marks)))
                # The crossfade tail is held after the final chunk, and after any chunk once
                # the listener is comfortably ahead: an engine whose last chunk is short or
                # empty (a network body ends when it ends) still leaves a tail to fade the
                # next segment into, and holding 50 ms costs nothing with a lead to spare.
                hold = chunk.is_final or self.ahead_ms() >= HOLD_TAIL_AHEAD_MS
                out = self._audio.chunk(chunk, hold_tail=hold)
                if out:
                    delivered += len(out) / BYTES_PER_MS
                    self._spoke_nothing = False
                    self._check_underflow()
                    await self._emit(AudioOut(out, self.audio_ms))
        finally:
            close = getattr(agen, "aclose", None)  # an async generator, as every adapter's is
            if close is not None:
                await close()
        marks = self._source_marks(words, clock.finish())
        if marks:
            await self._emit(Words(tuple(marks)))
        rest = self._audio.end()
        if rest:
            await self._emit(AudioOut(rest, self.audio_ms))
        return delivered

    def _source_marks(self, words: _WordCursor, marks: list[WordMark]) -> list[WordMark]:
        """The engine's word marks as marks of the client's own words."""
        out: list[WordMark] = []
        for mark in marks:
            first, last = words.locate(mark.text)
            out += self._text.marks.place(mark, first, last)
        return out

    # -- figures

    def rtf(self) -> float | None:
        if self._t_first is None:
            return None
        wall = self._loop.time() - self._t_open
        return (self.audio_ms / 1000) / wall if wall > 0 else None

    def snapshot(self) -> dict[str, Any]:
        rtf = self.rtf()
        return {
            "id": self.id, "backend": self.backend, "transport": self.spec.transport,
            "state": self.rate.state.value, "buffer_ms": round(self.observer.buffer_ms(), 1),
            "chunk_size": self.rate.chunk_size, "ttft_ms": self.ttft_ms,
            "rtf": None if rtf is None else round(rtf, 2), "underflows": self.underflows,
            "audio_ms": round(self.audio_ms, 1), "degraded": self.degraded,
            "voice": self.voice_id,
            "status": self.status,
        }


class _WordCursor:
    """Where each mark of one engine request falls among its words, in order: an engine's
    exact marks name the words they time (and may skip one with nothing to say)."""

    LOOKAHEAD = 8

    def __init__(self, engine: EngineText) -> None:
        self._texts = engine.text.split()
        self._ranges = engine.words
        self._next = 0

    def locate(self, word: str) -> tuple[int, int]:
        if not self._ranges:
            return 0, 0
        i = self._next
        for j in range(self._next, min(len(self._texts), self._next + self.LOOKAHEAD)):
            if self._texts[j] == word:
                i = j
                break
        i = min(i, len(self._ranges) - 1)
        self._next = i + 1
        return self._ranges[i]


def voiced_tags(caps: Capabilities) -> frozenset[str]:
    """The emotion tags an engine voices, by name ("laugh"; engines may spell "<laugh>")."""
    return frozenset(t.strip("<>") for t in caps.emotion_tags)


def _without_tags(engine: EngineText, voiced: frozenset[str]) -> EngineText:
    """Emotion tags this engine does not voice dropped from its text (after a failover)."""
    keep = [(w, r) for w, r in zip(engine.text.split(), engine.words, strict=True)
            if not (w.startswith("<") and w.endswith(">") and w[1:-1] in EMOTION_TAGS
                    and w[1:-1] not in voiced)]
    return EngineText(" ".join(w for w, _ in keep), tuple(r for _, r in keep))


__all__ = ["Owner", "Stream", "StreamSpec", "voiced_tags"]
