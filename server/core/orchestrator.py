"""The orchestrator: text in, paced 24 kHz audio out, for any backend and any transport.

Per stream: chunker -> [EDF gate] -> adapter.synth_stream(segment) -> resample -> tempo ->
stitcher -> a bounded queue (prefetch of one chunk) -> the transport. Rate control, stall
detection, retry, failover, barge-in and all measurements live here, not in adapters.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from adapters.base import (
    PIPELINE_RATE_HZ,
    AdapterSession,
    AudioChunk,
    Sampling,
    TTSAdapter,
    TTSInput,
)
from adapters.errors import (
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    NoAudioError,
    TTSError,
    UpstreamLost,
)
from dsp.chunker import Chunker
from dsp.resample import StreamResampler
from dsp.stitcher import Stitcher
from dsp.tempo import TimeStretcher
from dsp.text import clean_text, has_speech
from server.core.backends import BackendPool
from server.metrics import Metrics
from server.core.rate import RateController, RateState, profile_for
from server.core.scheduler import EdfGate
from server.settings_store import SettingsStore
from server.core.events import (
    AudioOut,
    BufferObserver,
    Degraded,
    SegmentDone,
    StreamEvent,
    WordMark,
    Words,
)
from server.core.timings import SegmentClock, heard_text

log = logging.getLogger("morpheus.orchestrator")

BYTES_PER_MS = PIPELINE_RATE_HZ * 2 / 1000
UPSTREAM_RETRIES = 3  # same-backend continuations per segment after UpstreamLost
HOLD_TAIL_AHEAD_MS = 250.0  # lead past which every chunk keeps its crossfade tail back
CLOSE_RETRY_S = 0.2  # aclose() cancels the producer again this often until it ends
_END = object()


class Busy(Exception):
    """Every stream slot and queue place is taken (the transport answers 429), or the server
    is draining for shutdown (503)."""

    def __init__(self, retry_after_s: float, *, draining: bool = False) -> None:
        super().__init__("the server is shutting down" if draining
                         else "too many concurrent streams")
        self.retry_after_s = retry_after_s
        self.draining = draining


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


class WallClockObserver:
    """Buffer model when nobody reports playback (HTTP): a player that starts once `start_ms`
    is queued (PLAYBACK_BUFFER_MS, as players and the benchmark's client do), plays in real
    time, and when it runs dry stalls until `start_ms` is queued again. (Audio sent minus wall
    time would go far below zero for a stream slower than real time, and make it look more
    urgent than a stream still waiting for its first audio; a player assumed to start at the
    first byte would look starved while a real one is still filling its buffer.)"""

    playback_known = False

    def __init__(self, start_ms: float = 0.0) -> None:
        self.start_ms = start_ms
        self.sent_ms = 0.0
        self.played_ms = 0.0
        self._playing = False
        self._last: float | None = None

    def _advance(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._last is not None and self._playing:
            self.played_ms = min(self.sent_ms, self.played_ms + 1000 * (now - self._last))
            self._playing = self.played_ms < self.sent_ms  # ran dry: it buffers again
        self._last = now

    def audio_sent(self, ms: float) -> None:
        self._advance()
        self.sent_ms += ms
        if self.sent_ms - self.played_ms >= self.start_ms:
            self._playing = True

    def buffer_ms(self) -> float:
        if self._last is None:
            return 0.0
        self._advance()
        return self.sent_ms - self.played_ms


class Stream:
    """One response: push text deltas in, iterate events out, interrupt at any time.

    The stream waits while input is open and nothing is buffered; it ends after `end_input()`
    once all audio is out. Iteration raises a TTSError when the backend (and the fallback)
    failed. `interrupt()` is barge-in: synthesis stops, queued audio is dropped.
    """

    def __init__(self, orch: Orchestrator, spec: StreamSpec, adapter: TTSAdapter,
                 observer: BufferObserver, voice: str | None) -> None:
        s = orch.settings
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
        self.observer = observer
        self._adapter = adapter
        self._chunker = Chunker()
        self._text_ready = asyncio.Event()
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)  # prefetch: one chunk ahead
        self._loop = asyncio.get_running_loop()
        self._t_open = self._loop.time()
        self._t_first: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._starving = False
        self._stitcher = Stitcher(sample_rate_hz=PIPELINE_RATE_HZ, crossfade_ms=50)
        self.rate = self._make_rate(adapter)
        self._state_names: set[str] = set()
        self._stall_ms = s.stall_timeout_ms
        self._segments = 0
        self._spoke_nothing = True
        self._chunk_audio_ms = 0.0  # EWMA of the audio per engine chunk
        self._queued_ms = 0.0
        self._ms_per_char = 65.0  # speech pace, learned per stream; places mid-segment resumes
        self._session: AdapterSession | None = None  # the adapter's per-stream conversation
        self._has_speech = False
        self._closed = False  # aclose() was called: produce nothing more
        self._made_ms = 0.0  # audio handed to the queue (ahead of audio_ms, which is taken)
        self.words: list[WordMark] = []  # timings of the words yielded so far

    # -- text input

    def push_text(self, text: str) -> None:
        """Append text; control characters and invalid code points never reach an engine."""
        text = clean_text(text)
        self._has_speech = self._has_speech or has_speech(text)
        self._chunker.push_text(text)
        self._text_ready.set()

    def flush(self) -> None:
        self._chunker.flush()
        self._text_ready.set()

    def end_input(self) -> None:
        self._chunker.end_input()
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
                self._queued_ms = max(0.0, self._queued_ms - ms)
                if self._t_first is None:
                    self._t_first = self._loop.time()
                    self.ttft_ms = 1000 * (self._t_first - self._t_open)
                    self.orch.metrics.ttft_ms.labels(self.backend, self.spec.transport).observe(self.ttft_ms)
                    log.info("first audio", extra={"request_id": self.id, "backend": self.backend,
                                                   "ttft_ms": round(self.ttft_ms, 1),
                                                   "chunk_size": self.rate.chunk_size})
                self.audio_ms += ms
                self.observer.audio_sent(ms)
            elif isinstance(item, Words):
                self.words.extend(item.words)
            yield item

    def heard_text(self, played_ms: float) -> str:
        """The words heard in full by `played_ms` of this response's audio."""
        return heard_text(self.words, played_ms)

    def interrupt(self) -> float:
        """Barge-in / cancel: stop synthesis now, drop queued audio; returns ms delivered."""
        if self.status == "running":
            self.status = "cancelled"
        self._closed = True  # the producer stops at its next chunk even if the cancel is lost
        if self._task is not None:
            self._task.cancel()
        self._stitcher.reset()
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
            self.orch._finished(self)

    # -- production

    def _make_rate(self, adapter: TTSAdapter) -> RateController:
        s = self.orch.settings
        cfg = profile_for(
            adapter.capabilities.chunk_unit, first_tokens=s.snac_first_chunk,
            steady_tokens=s.snac_target_chunk, first_chars=s.first_segment_chars,
            max_chars=s.max_segment_chars, target_ms=s.playback_buffer_ms,
            min_ms=s.buffer_min_ms, max_ms=s.buffer_max_ms, lock=s.chunk_lock,
            # A stream that starts while others hold the engine starts small too: its first
            # chunk then waits behind theirs for less time (earliest deadline first).
            low_latency=self.spec.low_latency or self._engine_busy(adapter),
            sub_sentence=adapter.capabilities.streams_sub_sentence)
        return RateController(cfg)

    def _engine_busy(self, adapter: TTSAdapter) -> bool:
        gate = self.orch.gate(adapter)
        others = any(st._adapter is adapter for st in self.orch.streams.values())
        return gate.slots is not None and (gate.busy > 0 or others)

    async def _emit(self, item: Any) -> None:
        if self._closed:
            raise asyncio.CancelledError  # aclose() ran; its cancel may have been lost
        if isinstance(item, AudioOut):
            self._queued_ms += len(item.pcm) / BYTES_PER_MS
            self._made_ms += len(item.pcm) / BYTES_PER_MS
        await self._queue.put(item)

    @property
    def made_ms(self) -> float:
        """Audio the engine has made for this stream so far (taken by the sink or not)."""
        return self._made_ms

    def ahead_ms(self) -> float:
        """Audio ahead of the listener's playback, counting what is made but not yet taken."""
        return self.observer.buffer_ms() + self._queued_ms

    def _urgency(self) -> float:
        """For the engine's gate (lower goes first): a stream with no audio yet before every
        other (first audio is what a new listener waits for), then least audio ahead."""
        return self.ahead_ms() if self._made_ms > 0 else float("-inf")

    async def _produce(self) -> None:
        try:
            while True:
                seg = await self._next_segment()
                if seg is None:
                    break
                self._segments += 1
                await self._speak_segment(seg)
            tail = self._stitcher.flush()
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
            log.warning("stream failed: %s", e, extra={"request_id": self.id, "backend": self.backend})
            await self._emit(e)
        except Exception as e:  # a bug must not leave the consumer waiting forever
            self.status = "failed"
            log.exception("stream crashed", extra={"request_id": self.id})
            await self._emit(TTSError(f"internal error: {e}", backend=self.backend))
        finally:
            await self._close_session()

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

    async def _next_segment(self) -> str | None:
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
            seg = self._chunker.pop(max_chars)
            if seg is not None and not has_speech(seg):
                continue  # "..." between sentences: nothing for an engine to say
            if seg is not None:
                return seg
            if self._chunker.done:
                if not self._has_speech:
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
                     extra={"request_id": self.id, "backend": self.backend})
            self.orch.metrics.timeouts.labels("input_idle").inc()
            self.end_input()

    def _publish_state(self, buffer_ms: float) -> None:
        m = self.orch.metrics
        state = self.rate.state.value
        m.buffer_ms.labels(self.backend, self.spec.transport).observe(max(0.0, buffer_ms))
        m.chunk_size.labels(self.backend).observe(self.rate.chunk_size)
        if state not in self._state_names:
            self._state_names.add(state)
            log.info("state", extra={"request_id": self.id, "backend": self.backend,
                                     "state": state, "chunk_size": self.rate.chunk_size,
                                     "buffer_ms": round(buffer_ms, 1)})

    async def _speak_segment(self, text: str) -> None:
        """Speak one segment; retry once smaller on a stall, then fail over to the fallback.

        When the engine fails part-way through a segment, the fallback speaks only the words
        not yet heard: the audio delivered, at this stream's observed ms per character, says
        where to resume (to within about a word), so nothing is said twice or skipped whole.
        """
        retried = False
        spoken = ""  # the part of `text` already delivered before a mid-segment failure
        delivered_before = 0.0
        upstream_retries = 0
        while True:
            rest = text[len(spoken):].strip()
            try:
                delivered = await self._try_segment(self._adapter, rest, smaller=retried)
                self._learn_pace(rest, delivered)
                await self._emit(SegmentDone(text, delivered_before + delivered, self.backend))
                return
            except _PartialFailure as pf:
                spoken += resume_point(rest, pf.delivered_ms, self._ms_per_char)
                delivered_before += pf.delivered_ms
                if isinstance(pf.error, UpstreamLost) and upstream_retries < UPSTREAM_RETRIES:
                    upstream_retries += 1  # another upstream of this backend speaks the rest
                    await self._lost_upstream(pf.error)
                else:
                    await self._failover(pf.error)
                    retried = True
                if not text[len(spoken):].strip():
                    await self._emit(SegmentDone(text, delivered_before, self.backend))
                    return
            except TTSError as e:
                if isinstance(e, UpstreamLost) and upstream_retries < UPSTREAM_RETRIES:
                    upstream_retries += 1
                    await self._lost_upstream(e)
                    continue
                if isinstance(e, BackendTimeout) and not retried:
                    retried = True
                    log.warning("stall, retrying smaller", extra={"request_id": self.id,
                                                                  "backend": self.backend})
                    continue
                await self._failover(e)
                retried = True  # the fallback gets no second stall retry

    def _learn_pace(self, text: str, delivered_ms: float) -> None:
        if text and delivered_ms > 0:
            self._ms_per_char = 0.7 * self._ms_per_char + 0.3 * delivered_ms / len(text)

    async def _lost_upstream(self, error: TTSError) -> None:
        """Same engine, another upstream: not a failover, not degraded; a session reconnects."""
        log.warning("continuing on another %s upstream: %s", self.backend, error,
                    extra={"request_id": self.id, "backend": self.backend})
        await self._close_session()

    async def _failover(self, error: TTSError) -> None:
        s = self.orch.settings
        target = s.fallback_backend
        if not target or target == self.backend or not self.orch.backends.enabled(target):
            raise error
        try:
            fallback = await self.orch.backends.ready(target)
        except TTSError:
            raise error from None
        log.warning("failover %s -> %s: %s", self.backend, target, error,
                    extra={"request_id": self.id, "backend": self.backend})
        self.orch.count_failover(self.backend, target)
        await self._emit(Degraded(self.backend, target, str(error)))
        self.orch._move(self, self.backend, target)
        await self._close_session()
        self.backend = target
        self._adapter = fallback
        self.degraded = True
        self.voice = fallback.default_voice() or ""
        self.rate = self._make_rate(fallback)
        self._stall_ms = s.stall_timeout_ms

    async def _try_segment(self, adapter: TTSAdapter, text: str, *, smaller: bool) -> float:
        caps = adapter.capabilities
        size = self.rate.chunk_size
        if smaller:
            size = max(self.rate.cfg.min_size, size // 2)
        req = TTSInput(
            text=text, voice=self.voice or None, language=self.spec.language,
            speed=self.spec.speed, sampling=self.spec.sampling,
            target_chunk=size if caps.chunk_unit == "tokens" else None,
            low_latency=self.spec.low_latency or self.rate.state is RateState.UNDERFLOW,
            buffer_ms=self.ahead_ms)
        resampler = StreamResampler(caps.native_rate_hz, PIPELINE_RATE_HZ)
        stretch = None if caps.native_speed or self.spec.speed == 1.0 else TimeStretcher(PIPELINE_RATE_HZ, self.spec.speed)
        self._stitcher.boundary()
        clock = SegmentClock(
            text, origin_ms=self._made_ms + self._stitcher.seam_offset() / (BYTES_PER_MS / 2),
            scale=1.0 / self.spec.speed if stretch is not None else 1.0,
            pace_ms_per_char=self._ms_per_char)
        gate = self.orch.gate(adapter)
        agen = self._source(adapter).synth_stream(req).__aiter__()
        delivered = 0.0
        try:
            while True:
                await self._wait_overflow()
                deadline_s = max(self._stall_ms, self.ahead_ms() + 250) / 1000
                t0 = self._loop.time()
                try:
                    async with gate.slot(self._urgency):
                        chunk: AudioChunk = await asyncio.wait_for(agen.__anext__(), deadline_s)
                except StopAsyncIteration:
                    break
                except asyncio.TimeoutError:
                    err = BackendTimeout(f"{adapter.name}: no audio within {deadline_s * 1000:.0f} ms",
                                         backend=adapter.name)
                    if delivered:
                        raise _PartialFailure(err, delivered) from None
                    raise err from None
                except TTSError as e:
                    if delivered:
                        raise _PartialFailure(e, delivered) from e
                    raise
                cost_ms = 1000 * (self._loop.time() - t0)
                self._chunk_audio_ms = (chunk.duration_ms if not self._chunk_audio_ms
                                        else 0.7 * self._chunk_audio_ms + 0.3 * chunk.duration_ms)
                self.orch.metrics.chunk_ms.labels(adapter.name).observe(cost_ms)
                self.rate.observe(len(text) if caps.chunk_unit == "segment" else size,
                                  cost_ms, chunk.duration_ms)
                if chunk.sample_rate_hz != resampler.in_rate_hz:  # voices differ in rate
                    pcm = resampler.flush()
                    resampler = StreamResampler(chunk.sample_rate_hz, PIPELINE_RATE_HZ)
                    pcm += resampler.process(chunk.pcm)
                else:
                    pcm = resampler.process(chunk.pcm)
                if chunk.is_final:
                    pcm += resampler.flush()
                if stretch is not None:
                    pcm = stretch.process(pcm) + (stretch.flush() if chunk.is_final else b"")
                marks = clock.chunk(chunk)
                if marks:
                    await self._emit(Words(tuple(marks)))
                # The crossfade tail is held after the final chunk, and after any chunk once
                # the listener is comfortably ahead: an engine whose last chunk is short or
                # empty (a network body ends when it ends) still leaves a tail to fade the
                # next segment into, and holding 50 ms costs nothing with a lead to spare.
                hold = chunk.is_final or self.ahead_ms() >= HOLD_TAIL_AHEAD_MS
                out = self._stitcher.process(pcm, hold_tail=hold)
                if out:
                    delivered += len(out) / BYTES_PER_MS
                    self._spoke_nothing = False
                    self._check_starvation()
                    await self._emit(AudioOut(out, self.audio_ms))
        finally:
            await agen.aclose()
        marks = clock.finish()
        if marks:
            await self._emit(Words(tuple(marks)))
        if stretch is not None:
            rest = self._stitcher.process(stretch.flush())
            if rest:
                await self._emit(AudioOut(rest, self.audio_ms))
        return delivered

    async def _wait_overflow(self) -> None:
        lead = self.rate.expected_cost_ms(self._chunk_audio_ms)
        while self.rate.should_pause(self.ahead_ms(), self.observer.playback_known, lead,
                                     self._chunk_audio_ms):
            wait_ms = self.rate.resume_wait_ms(self.ahead_ms()) - lead
            await asyncio.sleep(min(max(wait_ms, 5), 200) / 1000)

    def _check_starvation(self) -> None:
        if self._t_first is None:
            return
        if self.observer.buffer_ms() <= 0:
            if not self._starving:
                self._starving = True
                self.underflows += 1
                self.rate.starved()
                self.orch.metrics.underflow.labels(self.backend).inc()
                self.orch.totals["underflows"] += 1
        else:
            self._starving = False

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
            "audio_ms": round(self.audio_ms, 1), "degraded": self.degraded, "voice": self.voice,
            "status": self.status,
        }


def resume_point(text: str, delivered_ms: float, ms_per_char: float) -> str:
    """The prefix of `text` (whole words) that `delivered_ms` of audio has already spoken."""
    chars = delivered_ms / max(ms_per_char, 1e-6)
    best = ""
    for i, ch in enumerate(text):
        if ch == " " and i <= chars + 0.5:
            best = text[: i + 1]
    if chars >= len(text) - 0.5:
        return text
    return best


class _PartialFailure(Exception):
    def __init__(self, error: TTSError, delivered_ms: float) -> None:
        super().__init__(str(error))
        self.error = error
        self.delivered_ms = delivered_ms


class Orchestrator:
    """Admits streams (PARALLEL_STREAMS + a bounded queue, then 429), shares engines fairly."""

    def __init__(self, store: SettingsStore, backends: BackendPool, metrics: Metrics) -> None:
        self.store = store
        self.backends = backends
        self.metrics = metrics
        self.streams: dict[str, Stream] = {}
        self.totals = {"underflows": 0, "failovers": 0, "barge_ins": 0, "requests": 0}
        self._gates: dict[int, EdfGate] = {}
        metrics.track_states(lambda: [(s.backend, s.rate.state.value)
                                      for s in self.streams.values()])
        self._waiters: deque[asyncio.Future[None]] = deque()  # admission, first come first
        self._granted = 0  # slots handed to waiters that have not registered their stream yet
        self.draining = False  # shutting down: no new streams
        self._no_streams = asyncio.Event()
        self._no_streams.set()

    @property
    def settings(self) -> Any:
        return self.store.current

    def gate(self, adapter: TTSAdapter) -> EdfGate:
        g = self._gates.get(id(adapter))
        if g is None:
            g = self._gates[id(adapter)] = EdfGate(adapter.concurrency)
        return g

    async def _admit(self) -> None:
        """Wait for a stream slot, first come first served; Busy when the queue is full or
        the wait exceeds QUEUE_TIMEOUT_S. A newcomer never passes someone already waiting."""
        s = self.settings
        if self.draining:
            raise Busy(retry_after_s=5.0, draining=True)
        if not self._waiters and len(self.streams) + self._granted < s.parallel_streams:
            return
        if len(self._waiters) >= s.queue_max:
            self.metrics.rejected.inc()
            raise Busy(retry_after_s=max(1.0, s.queue_timeout_s / 2))
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        self.metrics.queued.set(len(self._waiters))
        try:
            await asyncio.wait_for(asyncio.shield(turn), s.queue_timeout_s)
        except (asyncio.TimeoutError, asyncio.CancelledError) as e:
            if turn.done() and not turn.cancelled():
                self._granted -= 1  # granted as we gave up: pass the slot on
                self._grant()
            else:
                turn.cancel()
                self._waiters.remove(turn)
            self.metrics.queued.set(len(self._waiters))
            if isinstance(e, asyncio.CancelledError):
                raise
            self.metrics.rejected.inc()
            raise Busy(retry_after_s=max(1.0, s.queue_timeout_s / 2)) from None
        self._granted -= 1  # the caller registers its stream before its next await

    def _grant(self) -> None:
        """Hand free slots to the longest waiters."""
        limit = self.settings.parallel_streams
        while self._waiters and len(self.streams) + self._granted < limit:
            turn = self._waiters.popleft()
            self._granted += 1
            turn.set_result(None)
        self.metrics.queued.set(len(self._waiters))

    async def open(self, spec: StreamSpec, observer: BufferObserver | None = None) -> Stream:
        """Admit and start a stream; raises BadRequest, Busy or BackendUnavailable."""
        s = self.settings
        name = spec.backend or s.tts_backend
        self.backends.validate_name(name)
        try:
            adapter = await self.backends.ready(name)
        except BackendUnavailable as e:
            fb = s.fallback_backend
            if not fb or fb == name or not self.backends.enabled(fb):
                raise
            log.warning("backend %s unavailable (%s); starting on %s", name, e, fb)
            adapter = await self.backends.ready(fb)
            self.count_failover(name, fb)
            spec = StreamSpec(**{**spec.__dict__, "voice": None})
            stream = await self._start(spec, adapter, observer)
            stream.degraded = True
            return stream
        return await self._start(spec, adapter, observer)

    def resolve_voice(self, adapter: TTSAdapter, voice: str | None) -> tuple[str | None, bool]:
        """(effective voice, fell_back): unknown voices fall back to the default, as Orpheus did."""
        ids = {v.id for v in adapter.voices()}
        if voice and (voice in ids or not ids):
            return voice, False
        default = self.settings.default_voice if self.settings.default_voice in ids else adapter.default_voice()
        return default, bool(voice)

    async def _start(self, spec: StreamSpec, adapter: TTSAdapter,
                     observer: BufferObserver | None) -> Stream:
        await self._admit()
        voice, _ = self.resolve_voice(adapter, spec.voice)
        observer = observer or WallClockObserver(self.settings.playback_buffer_ms)
        stream = Stream(self, spec, adapter, observer, voice)
        self.streams[stream.id] = stream
        self._no_streams.clear()
        self.totals["requests"] += 1
        self.metrics.active.labels(stream.backend).inc()
        return stream

    def count_failover(self, from_backend: str, to_backend: str) -> None:
        self.metrics.failover.labels(from_backend, to_backend).inc()
        self.totals["failovers"] += 1

    def _move(self, stream: Stream, old: str, new: str) -> None:
        self.metrics.active.labels(old).dec()
        self.metrics.active.labels(new).inc()

    def _finished(self, stream: Stream) -> None:
        if self.streams.pop(stream.id, None) is None:
            return
        m = self.metrics
        m.active.labels(stream.backend).dec()
        m.requests.labels(stream.backend, stream.status).inc()
        rtf = stream.rtf()
        if rtf is not None and stream.status == "completed":
            m.stream_rtf.labels(stream.backend).observe(rtf)
        log.info("stream end", extra={"request_id": stream.id, "backend": stream.backend,
                                      "status": stream.status, "audio_ms": round(stream.audio_ms),
                                      "underflows": stream.underflows})
        if not self.streams:
            self._no_streams.set()
        self._grant()

    async def idle(self) -> None:
        """Return once no stream is running."""
        await self._no_streams.wait()

    def get(self, stream_id: str) -> Stream | None:
        return self.streams.get(stream_id)

    def note_barge_in(self, backend: str) -> None:
        self.metrics.barge_in.labels(backend).inc()
        self.totals["barge_ins"] += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "active_streams": len(self.streams), "queued": len(self._waiters),
            "streams": [s.snapshot() for s in self.streams.values()],
            "totals": dict(self.totals), "backend": self.settings.tts_backend,
        }

    async def aclose(self) -> None:
        for stream in list(self.streams.values()):
            stream.interrupt()
            await stream.aclose()


__all__ = ["BadRequest", "Busy", "Orchestrator", "Stream", "StreamSpec", "WallClockObserver"]
