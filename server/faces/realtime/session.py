"""The event session both realtime transports share (WebSocket and the WebRTC data channel).

`RealtimeSession` speaks the vocabulary of signaling/protocol.py over any transport: it turns
client messages into orchestrator streams (one response at a time, several in a row) and the
streams' events into server events, and hands audio to an `AudioSink`. The WebSocket transport
gives it `WsAudioSink` (binary PCM frames, bounded lead over the client's playback); WebRTC
(server/webrtc.py) gives it the paced track.

Semantics worth knowing:
- Text appended after `input_text.done` while that response is still speaking is kept for the
  next response, which starts when the current one ends.
- `response.cancel` is idempotent: with nothing running it does nothing and sends nothing
  (unless audio of a finished response is still buffered at the client: that is cleared and
  `output_audio_buffer.cleared` is sent).
- Bad messages get an `error` event; the connection stays open.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from adapters.errors import BackendUnavailable, BadRequest, MorpheusError, TTSError
from server.app_keys import BACKENDS, ORCHESTRATOR, SETTINGS
from server.core.admission import Busy
from server.core.events import AudioOut, SegmentDone, Words
from server.core.orchestrator import Orchestrator
from server.core.stream import Stream, StreamSpec
from signaling import protocol as P

log = logging.getLogger("morpheus.realtime")

EventSender = Callable[[dict[str, Any]], Awaitable[None]]
WS_FRAME_MS = 40  # binary frames are 20-100 ms: 40 ms, the tail 20-60 ms
WS_MIN_FRAME_MS = 20
CANCEL_GRACE_S = 2.0  # an interrupted stream that does not end by then is cancelled outright


class AudioSink(Protocol):
    """Where a session's audio goes; also the stream's BufferObserver."""

    playback_known: bool

    def audio_sent(self, ms: float) -> None: ...

    def buffer_ms(self) -> float: ...

    def stalled_ms(self) -> float: ...

    def begin_response(self, response_id: str, sample_rate_hz: int) -> None:
        """A new response's audio follows; earlier responses' audio is all written."""

    async def write(self, pcm: bytes) -> None:
        """24 kHz s16le mono audio of the current response; may wait (pacing)."""

    async def finish(self) -> None:
        """The current response has no more audio: send what is held back."""

    def clear(self) -> float:
        """Drop unplayed audio now; returns the ms of the current response the listener got."""

    def played_ms(self) -> float:
        """Ms of the current (or last) response the listener has played so far."""

    def unplayed_ms(self) -> float:
        """Audio sent or queued that the listener has not heard yet."""

    def report(self, report: P.PlaybackReport) -> None:
        """A client playback report."""


# --- the shared session -------------------------------------------------------------------


@dataclass
class Response:
    """One spoken response: text ops buffered until its stream is open, then applied."""

    id: str
    ops: list[tuple[str, str]] = field(default_factory=list)  # ("append", text) | ("flush"|"done", "")
    stream: Stream | None = None
    task: asyncio.Task[None] | None = None
    status: str = "running"  # running | completed | cancelled | failed
    input_done: bool = False
    chars: int = 0
    audio_started: bool = False

    @property
    def accepts_input(self) -> bool:
        return self.status == "running" and not self.input_done

    def apply(self, op: str, text: str = "") -> None:
        if self.stream is None:
            self.ops.append((op, text))
            return
        if op == "append":
            self.stream.push_text(text)
        elif op == "flush":
            self.stream.flush()
        elif op == "done":
            self.stream.end_input()


class RealtimeSession:
    """The event vocabulary over one connection, driving the orchestrator."""

    def __init__(
        self,
        app: web.Application,
        *,
        transport: str,
        send: EventSender,
        sink: AudioSink,
        session: P.SessionConfig,
    ) -> None:
        self.app = app
        self.orch: Orchestrator = app[ORCHESTRATOR]
        self.transport = transport
        self.send = send
        self.sink = sink
        self.config = session
        self.current: Response | None = None
        self.last: Response | None = None  # the response whose audio may still be playing
        self._next_ops: list[tuple[str, str]] = []  # text for the response after `current`
        self._next_chars = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.responses = 0

    @property
    def settings(self) -> Any:
        return self.app[SETTINGS].current

    @property
    def speaking(self) -> bool:
        return self.current is not None and self.current.status == "running"

    async def start(self) -> None:
        await self.send(P.session_created(self.effective_config()))

    # --- inbound ------------------------------------------------------------------------

    async def handle_text(self, raw: str | bytes) -> None:
        """One client message; protocol errors become `error` events."""
        try:
            msg = P.parse_client_message(raw)
            await self.dispatch(msg)
        except P.ProtocolError as e:
            await self.send(e.payload())

    async def dispatch(self, msg: P.ClientMessage) -> None:
        if isinstance(msg, P.InputTextAppend):
            await self._append(msg.text)
        elif isinstance(msg, P.InputTextFlush):
            self._op("flush")
        elif isinstance(msg, P.InputTextDone):
            self._op("done")
        elif isinstance(msg, P.ResponseCancel):
            await self.cancel()
        elif isinstance(msg, P.PlaybackReport):
            self.sink.report(msg)
        elif isinstance(msg, P.SessionUpdate):
            await self._update_session(msg)

    async def _update_session(self, update: P.SessionUpdate) -> None:
        backend = update.backend
        if backend is not None:
            try:
                self.app[BACKENDS].validate_name(backend, field="session.backend")
            except BadRequest as e:
                raise P.ProtocolError(P.INVALID_FIELD, str(e), "session.backend") from None
        if self.transport == "webrtc" and update.sample_rate_hz not in (None, 48000):
            # The Opus track is 48 kHz whatever the client asks; say so rather than ignore it.
            update = P.SessionUpdate(**{**update.__dict__, "sample_rate_hz": None})
        self.config = self.config.updated(update)
        await self.send(P.session_updated(self.effective_config()))

    def effective_config(self) -> P.SessionConfig:
        """The session with backend and voice resolved to what a response would use."""
        backend = self.config.backend or self.settings.tts_backend
        voice = self.config.voice
        try:
            adapter = self.app[BACKENDS].instance(backend)
            voice, _ = self.orch.resolve_voice(adapter, voice)
        except MorpheusError:
            pass  # reported when a response opens
        normalize = self.config.normalize
        if normalize is None:
            normalize = self.settings.text_normalization
        return P.SessionConfig(**{**self.config.__dict__, "backend": backend, "voice": voice,
                                  "normalize": normalize})

    def _check_length(self, chars: int) -> None:
        limit = self.settings.max_input_chars
        if chars > limit:
            raise P.ProtocolError(
                P.INVALID_FIELD, f"a response's text is limited to {limit} characters", "text"
            )

    async def _append(self, text: str) -> None:
        resp = self.current
        if resp is not None and resp.accepts_input:
            self._check_length(resp.chars + len(text))
            resp.chars += len(text)
            resp.apply("append", text)
            return
        if not text:
            return  # nothing to say: no response for an empty delta
        if resp is not None:  # still speaking a finished input: this text is the next response
            self._check_length(self._next_chars + len(text))
            self._next_chars += len(text)
            self._next_ops.append(("append", text))
            return
        self._check_length(len(text))
        await self._begin([("append", text)], len(text))

    def _op(self, op: str) -> None:
        resp = self.current
        if resp is not None and resp.accepts_input:
            resp.apply(op)
            if op == "done":
                resp.input_done = True
        elif self._next_ops:
            self._next_ops.append((op, ""))
        # else: nothing buffered, nothing to flush or finish

    # --- responses ----------------------------------------------------------------------

    async def _begin(self, ops: list[tuple[str, str]], chars: int) -> None:
        resp = Response(id=f"resp_{uuid.uuid4().hex[:16]}", chars=chars)
        self.responses += 1
        self.current = resp
        for op, text in ops:
            resp.apply(op, text)
            resp.input_done = resp.input_done or op == "done"
        await self.send(P.response_created(resp.id))
        resp.task = asyncio.create_task(self._run(resp), name=f"response-{resp.id}")
        self._tasks.add(resp.task)
        resp.task.add_done_callback(self._tasks.discard)

    def _spec(self, resp: Response) -> StreamSpec:
        c = self.config
        return StreamSpec(
            backend=c.backend, voice=c.voice, speed=c.speed, low_latency=c.low_latency,
            request_id=resp.id, transport=self.transport, incremental=True,
            normalize=c.normalize,
        )

    async def _run(self, resp: Response) -> None:
        try:
            stream = await self.orch.open(self._spec(resp), observer=self.sink)
        except Busy as e:
            await self._fail(resp, P.BUSY, f"{e}; retry later", retry_after_s=e.retry_after_s)
            return
        except BadRequest as e:
            await self._fail(resp, P.BAD_REQUEST, str(e), field=_session_field(e.field))
            return
        except BackendUnavailable as e:
            await self._fail(resp, P.BACKEND_UNAVAILABLE, str(e))
            return
        except MorpheusError as e:
            await self._fail(resp, P.ENGINE_ERROR, str(e))
            return
        resp.stream = stream
        try:
            if resp.status != "running":  # cancelled while the stream was being admitted
                stream.interrupt()
                return
            for op, text in resp.ops:
                resp.apply(op, text)
            resp.ops.clear()
            self.last = resp
            self.sink.begin_response(resp.id, self.config.sample_rate_hz)
            await self._pump(resp, stream)
        except ConnectionError:
            if resp.status == "running":
                resp.status = "cancelled"  # the client went away mid-send
            stream.interrupt()
        except asyncio.CancelledError:
            if resp.status == "running":
                resp.status = "cancelled"  # the session is closing
            stream.interrupt()
            raise
        finally:
            await stream.aclose()
            self._response_ended(resp)

    async def _pump(self, resp: Response, stream: Stream) -> None:
        try:
            async for ev in stream:
                if resp.status != "running":
                    break
                if isinstance(ev, AudioOut):
                    if not resp.audio_started:
                        resp.audio_started = True
                        await self.send(P.response_audio_started(resp.id, _round(stream.ttft_ms)))
                    await self.sink.write(ev.pcm)
                elif isinstance(ev, Words):
                    for w in ev.words:
                        await self.send(P.word(resp.id, w.text, w.start_ms, w.end_ms, w.exact,
                                                     w.spoken))
                elif isinstance(ev, SegmentDone):
                    await self.send(P.segment_done(resp.id, ev.text, ev.audio_ms))
        except (TTSError, BadRequest) as e:
            if resp.status == "running":
                await self.sink.finish()
                resp.status = "failed"
                if isinstance(e, BadRequest):  # e.g. nothing speakable in the text
                    await self.send(P.error(P.BAD_REQUEST, str(e), field="text"))
                else:
                    await self.send(P.error(P.ENGINE_ERROR, str(e)))
                await self.send(P.response_done(resp.id, "failed", stream.audio_ms))
            return
        if stream.status == "cancelled" and resp.status == "running":
            # Ended from outside (HTTP DELETE with the response id): a cancel, not a completion.
            for event in self.stop_current():
                await self.send(event)
            return
        if resp.status == "running":
            await self.sink.finish()
            resp.status = "completed"
            await self.send(P.response_done(
                resp.id, "completed", stream.audio_ms, backend=stream.backend,
                degraded=stream.degraded,
            ))

    async def _fail(self, resp: Response, code: str, message: str, **extra: Any) -> None:
        if resp.status != "running":
            self._response_ended(resp)
            return
        resp.status = "failed"
        await self.send(P.error(code, message, **extra))
        await self.send(P.response_done(resp.id, "failed", 0.0))
        self._response_ended(resp)

    def _response_ended(self, resp: Response) -> None:
        if self.current is not resp:
            return
        self.current = None
        if self._next_ops and not self._closed:
            ops, chars = self._next_ops, self._next_chars
            self._next_ops, self._next_chars = [], 0
            task = asyncio.create_task(self._begin(ops, chars))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # --- stopping -----------------------------------------------------------------------

    def stop_current(self) -> list[dict[str, Any]]:
        """Cancel now, synchronously (barge-in needs it before the next audio frame).

        Clears the sink first (silence within a frame), then interrupts synthesis. Returns the
        events to send: `output_audio_buffer.cleared` and, when a response was running,
        `response.done` (cancelled). Empty when nothing was playing or running.
        """
        self._next_ops, self._next_chars = [], 0
        resp = self.current
        if resp is None or resp.status != "running":
            last = self.last
            if last is not None and self.sink.unplayed_ms() > 0:
                played = self.sink.clear()
                return [P.output_audio_buffer_cleared(last.id, played, _heard(last, played))]
            return []
        resp.status = "cancelled"
        played = self.sink.clear()
        if self.last is not resp:
            played = 0.0  # cancelled before its audio began: the sink's figure is older audio
        if resp.stream is not None:
            resp.stream.interrupt()
        self.current = None
        if resp.task is not None:
            self._watch_cancel(resp.task)
        heard = _heard(resp, played)
        return [
            P.output_audio_buffer_cleared(resp.id, played, heard),
            P.response_done(resp.id, "cancelled", played, heard_text=heard),
        ]

    async def cancel(self) -> None:
        for ev in self.stop_current():
            await self.send(ev)

    def _watch_cancel(self, task: asyncio.Task[None]) -> None:
        """interrupt() ends iteration promptly; make sure, without blocking the caller."""

        async def grace() -> None:
            done, _ = await asyncio.wait({task}, timeout=CANCEL_GRACE_S)
            if not done:
                log.warning("interrupted stream still running after %.1f s", CANCEL_GRACE_S)
                task.cancel()

        t = asyncio.create_task(grace())
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # --- shutdown -----------------------------------------------------------------------

    def owes(self) -> bool:
        """A response is running or waiting to start, or its audio is not yet played out
        (the sink knows: the client's reports, or the paced track)."""
        return self.current is not None or bool(self._next_ops) or self.sink.unplayed_ms() > 0

    async def shutdown(self, reason: str) -> None:
        """The server is stopping: tell the client why; a response still running is cancelled
        (with what was heard of it) so the client can finish its turn elsewhere."""
        await self.send(P.error(P.SERVER_SHUTDOWN, f"{reason}; reconnect to continue"))
        await self.cancel()

    async def aclose(self) -> None:
        """The client is gone: stop synthesis at once and wait for the streams to close."""
        self._closed = True
        self._next_ops = []
        resp = self.current
        if resp is not None:
            resp.status = "cancelled" if resp.status == "running" else resp.status
            if resp.stream is not None:
                resp.stream.interrupt()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _heard(resp: Response, played_ms: float) -> str:
    """What the listener heard of `resp` when its audio stopped at `played_ms`."""
    return resp.stream.heard_text(played_ms) if resp.stream is not None else ""


def _session_field(name: str | None) -> str | None:
    if name in ("backend", "voice", "speed", "low_latency"):
        return f"session.{name}"
    return name


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


# --- the WebSocket sink -------------------------------------------------------------------

__all__ = ["AudioSink", "RealtimeSession", "Response"]
