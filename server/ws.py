"""WebSocket speech (GET /v1/audio/speech/ws), and the event session both realtime transports share.

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
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from adapters.base import PIPELINE_RATE_HZ
from adapters.errors import BackendUnavailable, BadRequest, MorpheusError, TTSError
from dsp.resample import StreamResampler
from server.app_keys import BACKENDS, ORCHESTRATOR, SETTINGS
from server.orchestrator import Busy, Orchestrator, Stream, StreamSpec
from server.stream import AudioOut, SegmentDone
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
        return P.SessionConfig(**{**self.config.__dict__, "backend": backend, "voice": voice})

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
            request_id=resp.id, transport=self.transport,
        )

    async def _run(self, resp: Response) -> None:
        try:
            stream = await self.orch.open(self._spec(resp), observer=self.sink)
        except Busy as e:
            await self._fail(resp, P.BUSY, "too many concurrent streams; retry later",
                             retry_after_s=e.retry_after_s)
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
                elif isinstance(ev, SegmentDone):
                    await self.send(P.segment_done(resp.id, ev.text, ev.audio_ms))
        except TTSError as e:
            if resp.status == "running":
                await self.sink.finish()
                resp.status = "failed"
                await self.send(P.error(P.ENGINE_ERROR, str(e)))
                await self.send(P.response_done(resp.id, "failed", stream.audio_ms))
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
            if self.last is not None and self.sink.unplayed_ms() > 0:
                return [P.output_audio_buffer_cleared(self.last.id, self.sink.clear())]
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
        return [
            P.output_audio_buffer_cleared(resp.id, played),
            P.response_done(resp.id, "cancelled", played),
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


def _session_field(name: str | None) -> str | None:
    if name in ("backend", "voice", "speed", "low_latency"):
        return f"session.{name}"
    return name


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


# --- the WebSocket sink -------------------------------------------------------------------


class WsAudioSink:
    """Binary PCM frames at the session's rate, at most `max_lead_ms` ahead of playback.

    The client's playback position is modelled as real-time consumption of what was sent,
    corrected by every `playback.report`: `buffer_ms` when given (the client's queue depth),
    else `played_ms`, counted from the start of the response or of the connection (told apart
    by size). Without reports the model is wall-clock time since the audio was sent.
    """

    playback_known = True

    def __init__(
        self,
        ws: web.WebSocketResponse,
        lock: asyncio.Lock,
        *,
        max_lead_ms: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ws = ws
        self._lock = lock
        self.max_lead_ms = max_lead_ms
        self._clock = clock
        self._rate_hz = PIPELINE_RATE_HZ
        self._resampler = StreamResampler(PIPELINE_RATE_HZ, PIPELINE_RATE_HZ)
        self._pending = b""
        self._generation = 0
        self._wake = asyncio.Event()
        self._lead_ms = 0.0
        self._lead_at = clock()
        self._unsent_ms = 0.0
        self.sent_total_ms = 0.0  # this connection
        self.sent_response_ms = 0.0  # the current response
        self.frames_sent = 0
        self.frame_sizes_ms: list[float] = []

    # --- the listener model -------------------------------------------------------------

    def lead_ms(self) -> float:
        elapsed_ms = 1000.0 * (self._clock() - self._lead_at)
        return max(0.0, self._lead_ms - elapsed_ms)

    def _set_lead(self, ms: float) -> None:
        self._lead_ms = max(0.0, ms)
        self._lead_at = self._clock()
        self._wake.set()

    def buffer_ms(self) -> float:
        return self.lead_ms() + self._unsent_ms

    def audio_sent(self, ms: float) -> None:
        """BufferObserver: counted when frames actually go out, not when yielded."""

    def played_ms(self) -> float:
        return max(0.0, self.sent_response_ms - self.lead_ms())

    def unplayed_ms(self) -> float:
        return self.lead_ms()

    def report(self, report: P.PlaybackReport) -> None:
        if report.buffer_ms is not None:
            self._set_lead(report.buffer_ms)
        elif report.played_ms is not None:
            # Relative to this response when it fits in it, else to the connection.
            if report.played_ms <= self.sent_response_ms + WS_MIN_FRAME_MS:
                self._set_lead(self.sent_response_ms - report.played_ms)
            else:
                self._set_lead(self.sent_total_ms - report.played_ms)

    # --- audio --------------------------------------------------------------------------

    def _bytes_for(self, ms: float) -> int:
        return int(self._rate_hz * ms / 1000) * 2

    def begin_response(self, response_id: str, sample_rate_hz: int) -> None:
        self._rate_hz = sample_rate_hz
        self._resampler = StreamResampler(PIPELINE_RATE_HZ, sample_rate_hz)
        self._pending = b""
        self.sent_response_ms = 0.0

    async def write(self, pcm: bytes) -> None:
        generation = self._generation
        data = self._pending + self._resampler.process(pcm)
        frame, least = self._bytes_for(WS_FRAME_MS), self._bytes_for(WS_MIN_FRAME_MS)
        frames = [data[i : i + frame] for i in range(0, len(data) - len(data) % frame, frame)]
        rest = data[len(frames) * frame :]
        if len(rest) >= least:
            frames.append(rest)
            rest = b""
        self._pending = rest
        await self._send_frames(frames, generation)

    async def finish(self) -> None:
        generation = self._generation
        tail = self._pending + self._resampler.flush()
        self._pending = b""
        least = self._bytes_for(WS_MIN_FRAME_MS)
        if tail and len(tail) < least:
            tail += bytes(least - len(tail))  # keep every frame >= 20 ms
        frame = self._bytes_for(WS_FRAME_MS)
        frames = [tail[i : i + frame] for i in range(0, len(tail), frame)]
        if len(frames) > 1 and len(frames[-1]) < least:
            frames[-2:] = [frames[-2] + frames[-1]]
        await self._send_frames(frames, generation)

    async def _send_frames(self, frames: list[bytes], generation: int) -> None:
        self._unsent_ms = sum(len(f) for f in frames) * 500.0 / self._rate_hz
        try:
            for f in frames:
                ms = len(f) * 500.0 / self._rate_hz
                if not await self._wait_for_room(ms, generation):
                    return
                async with self._lock:
                    if generation != self._generation:
                        return  # cleared while waiting for the lock: never send stale audio
                    await self._ws.send_bytes(f)
                self._set_lead(self.lead_ms() + ms)
                self._unsent_ms = max(0.0, self._unsent_ms - ms)
                self.sent_total_ms += ms
                self.sent_response_ms += ms
                self.frames_sent += 1
        finally:
            self._unsent_ms = 0.0

    async def _wait_for_room(self, frame_ms: float, generation: int) -> bool:
        """Wait until sending `frame_ms` keeps the lead within bounds; False if cleared."""
        while generation == self._generation and not self._ws.closed:
            lead = self.lead_ms()
            over = lead + frame_ms - self.max_lead_ms
            if over <= 0 or lead == 0.0:
                return True
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), over / 1000.0)
            except asyncio.TimeoutError:
                pass
        return False

    def clear(self) -> float:
        played = self.played_ms()
        self._generation += 1
        self._pending = b""
        self._resampler = StreamResampler(PIPELINE_RATE_HZ, self._rate_hz)
        self._set_lead(0.0)  # the client flushes its player on output_audio_buffer.cleared
        self.sent_response_ms = played
        return played


# --- the route ----------------------------------------------------------------------------


async def speech_ws(request: web.Request) -> web.WebSocketResponse:
    """GET /v1/audio/speech/ws: JSON events both ways, PCM s16le mono binary frames out."""
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=P.MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    settings = request.app[SETTINGS].current
    lock = asyncio.Lock()

    async def send(event: dict[str, Any]) -> None:
        if ws.closed:
            return
        async with lock:
            try:
                await ws.send_str(P.dumps(event))
            except ConnectionError:
                pass  # the receive loop sees the close and ends the session

    sink = WsAudioSink(ws, lock, max_lead_ms=settings.ws_max_lead_ms)
    session = RealtimeSession(
        request.app, transport="ws", send=send, sink=sink,
        # backend None: each response uses the active backend (POST /config applies at once)
        session=P.SessionConfig(barge_in=False),
    )
    try:
        await session.start()
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await session.handle_text(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await send(P.error(P.UNSUPPORTED, "binary input is not supported; send JSON text"))
            elif msg.type == WSMsgType.ERROR:
                log.debug("websocket error: %r", ws.exception())
                break
    finally:
        await session.aclose()
        await ws.close()
    return ws


__all__ = ["AudioSink", "RealtimeSession", "Response", "WsAudioSink", "speech_ws"]
