"""One Wyoming connection: events in, orchestrator streams, audio events out.

- `synthesize` -> `audio-start`, `audio-chunk`s as the audio is made, `audio-stop`.
- `synthesize-start`, `synthesize-chunk`s (pieces may split words), the whole-text `synthesize`
  Home Assistant adds "for compatibility" (ignored while a stream is open), `synthesize-stop`
  -> one audio cycle spoken from the pieces as they arrive (one incremental Morpheus stream),
  then `synthesize-stopped`.
- A failure is an `error` event (text and code) that ends that reply's audio (no `audio-stop`
  follows it); a streaming reply still ends with `synthesize-stopped` once the client sends
  `synthesize-stop`. The connection stays usable; only bytes that are not an event within
  limits, or WYOMING_IDLE_TIMEOUT_S of silence while nothing is being spoken, close it.
- Replies on one connection are spoken in order, never interleaved; connections run
  concurrently through the orchestrator. A client that leaves stops its synthesis at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
)

from adapters.base import PIPELINE_RATE_HZ, SAMPLE_WIDTH_BYTES
from adapters.errors import BackendUnavailable, BadRequest, MorpheusError, TTSError
from server.app_keys import METRICS
from server.core.admission import Busy
from server.core.events import BYTES_PER_MS, AudioOut
from server.core.orchestrator import Orchestrator
from server.core.stream import Stream, StreamSpec
from server.faces.input import speakable
from server.faces.writes import send_within
from server.faces.wyoming.events import (
    MalformedEvent,
    RequestError,
    SynthesisRequest,
    VoiceChoice,
    chunk_text,
    parse_synthesis,
    read_event,
)

log = logging.getLogger("morpheus.wyoming")

CHUNK_BYTES = 1024 * SAMPLE_WIDTH_BYTES  # samples per audio-chunk as wyoming-piper sends them
MAX_PENDING = 4  # replies queued or speaking on one connection
# error codes (the WebSocket protocol's where one fits)
BUSY, BACKEND_UNAVAILABLE, ENGINE_ERROR = "busy", "backend_unavailable", "engine_error"
NOTHING_SPEAKABLE, TEXT_TOO_LONG = "nothing_speakable", "text_too_long"
OUT_OF_SEQUENCE, INVALID_EVENT = "out_of_sequence", "invalid_event"
TOO_MANY_CONNECTIONS = "too_many_connections"
SERVER_SHUTDOWN = "server_shutdown"


@dataclass(eq=False)
class Reply:
    """One requested utterance: text buffered until its stream is open, then pushed into it."""

    streaming: bool
    backend: str | None = None  # None: the active one (or a stored voice's own)
    voice: str | None = None
    pieces: list[str] = field(default_factory=list)
    chars: int = 0
    has_input: asyncio.Event = field(default_factory=asyncio.Event)  # text or the end came
    input_done: asyncio.Event = field(default_factory=asyncio.Event)
    stream: Stream | None = None
    error: RequestError | None = None
    task: asyncio.Task[None] | None = None

    def push(self, text: str) -> None:
        if self.error is not None:
            return
        if self.stream is not None:
            self.stream.push_text(text)
        else:
            self.pieces.append(text)
        self.has_input.set()

    def end(self) -> None:
        self.input_done.set()
        self.has_input.set()
        if self.stream is not None:
            self.stream.end_input()

    def attach(self, stream: Stream) -> None:
        self.stream = stream
        for text in self.pieces:
            stream.push_text(text)
        self.pieces.clear()
        if self.input_done.is_set():
            stream.end_input()

    def fail(self, error: RequestError) -> None:
        """The first failure wins; the stream, if any, stops now."""
        if self.error is None:
            self.error = error
        self.has_input.set()  # the error goes out now, not when text arrives
        if self.stream is not None and self.stream.status == "running":
            self.stream.interrupt()

    @property
    def speaking(self) -> bool:
        """The server, not the client, is what this reply waits on."""
        return (self.task is not None and not self.task.done() and self.error is None
                and (not self.streaming or self.input_done.is_set()))


class Host(Protocol):
    """What a connection needs from the face that accepted it (server/faces/wyoming/face.py)."""

    app: web.Application

    @property
    def settings(self) -> Any: ...

    @property
    def orch(self) -> Orchestrator: ...

    def admit(self, conn: WyomingConnection) -> bool:
        """Count the connection in; False when the face is full."""

    def release(self, conn: WyomingConnection) -> None: ...

    async def info(self) -> Info: ...

    async def resolve_voice(self, choice: VoiceChoice | None) -> tuple[str | None, str | None]:
        """(backend, voice id) for a request; RequestError when the voice is unknown."""


class WyomingConnection(AsyncEventHandler):
    """The `wyoming` package's handler with a bounded reader, an idle timeout and replies
    that run as tasks, so events (and the client leaving) are seen while audio goes out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 face: Host) -> None:
        super().__init__(reader, writer)
        self.face = face
        self._write_lock = asyncio.Lock()  # one event at a time; 3.10's drain() is not shared
        self._open: Reply | None = None  # the streaming reply between start and stop
        self._replies: list[Reply] = []

    @property
    def settings(self) -> Any:
        return self.face.settings

    async def write_event(self, event: Event) -> None:
        async with self._write_lock:  # a client that takes nothing is closed (WRITE_TIMEOUT_S)
            await send_within(async_write_event(event, self.writer),
                              self.settings.write_timeout_s, self.face.app[METRICS],
                              self.writer.close)

    async def _error(self, code: str, text: str) -> None:
        # Home Assistant does not show error events: the log is where its users look.
        log.info("error event to a Wyoming client: %s: %s", code, text)
        await self.write_event(Error(text=text, code=code).event())

    # --- the event loop -------------------------------------------------------------------

    async def run(self) -> None:
        self._is_running = True
        admitted = self.face.admit(self)
        try:
            if not admitted:
                limit = self.settings.wyoming_max_connections
                await self._error(TOO_MANY_CONNECTIONS,
                                  f"{limit} connections are open (WYOMING_MAX_CONNECTIONS)")
                return
            await self._receive()
        except (ConnectionError, OSError):
            pass  # the client left mid-write
        finally:
            await self.disconnect()
            self.writer.close()
            self.face.release(self)

    async def _receive(self) -> None:
        s = self.settings
        max_data = max(1 << 20, 8 * s.max_input_chars)
        read: asyncio.Future[Event | None] | None = None
        try:
            while self._is_running:
                if read is None:
                    read = asyncio.ensure_future(read_event(self.reader, max_data_bytes=max_data))
                done, _ = await asyncio.wait({read}, timeout=s.wyoming_idle_timeout_s)
                if not done:
                    if any(r.speaking for r in self._replies):
                        continue  # the client is listening, not idle
                    log.info("closing a Wyoming connection idle for %.0f s",
                             s.wyoming_idle_timeout_s)
                    return
                finished, read = read, None
                try:
                    event = finished.result()
                except MalformedEvent as e:
                    await self._error(INVALID_EVENT, f"{e}; closing the connection")
                    return
                if event is None or not await self.handle_event(event):
                    return
        finally:
            if read is not None:
                read.cancel()

    async def handle_event(self, event: Event) -> bool:
        try:
            await self._dispatch(event)
        except RequestError as e:
            await self._error(e.code, e.text)
        return True

    async def _dispatch(self, event: Event) -> None:
        kind = event.type
        if Describe.is_type(kind):
            await self.write_event((await self.face.info()).event())
        elif Ping.is_type(kind):
            await self.write_event(Pong(text=event.data.get("text")).event())
        elif Synthesize.is_type(kind):
            if self._open is None:  # inside a stream it is the compatibility copy: ignored
                await self._synthesize(parse_synthesis(event, with_text=True))
        elif SynthesizeStart.is_type(kind):
            if self._open is not None:
                raise RequestError(OUT_OF_SEQUENCE, "a synthesis stream is already open; "
                                   "send synthesize-stop first")
            self._open = await self._new_reply(parse_synthesis(event, with_text=False), True)
        elif SynthesizeChunk.is_type(kind):
            if self._open is None:
                raise RequestError(OUT_OF_SEQUENCE, "synthesize-chunk outside a stream; "
                                   "send synthesize-start first")
            self._add_text(self._open, chunk_text(event))
        elif SynthesizeStop.is_type(kind):
            reply, self._open = self._open, None
            if reply is None:
                raise RequestError(OUT_OF_SEQUENCE, "synthesize-stop without synthesize-start")
            reply.end()
        # Anything else (select-program, other domains' events) is not for us: dropped.

    async def _synthesize(self, req: SynthesisRequest) -> None:
        reply = await self._new_reply(req, False)
        try:
            text = speakable(req.text)
        except ValueError as e:
            reply.fail(RequestError(NOTHING_SPEAKABLE, f"text {e}"))
        else:
            self._add_text(reply, text)
        reply.end()

    def _add_text(self, reply: Reply, text: str) -> None:
        reply.chars += len(text)
        limit = self.settings.max_input_chars
        if reply.chars > limit:
            reply.fail(RequestError(TEXT_TOO_LONG, f"the text is over {limit} characters "
                                    "(MAX_INPUT_CHARS)"))
        reply.push(text)

    async def _new_reply(self, req: SynthesisRequest, streaming: bool) -> Reply:
        if len(self._replies) >= MAX_PENDING:
            raise RequestError(BUSY, f"{MAX_PENDING} replies are already queued on this "
                               "connection; wait for their audio")
        reply = Reply(streaming=streaming)
        try:
            reply.backend, reply.voice = await self.face.resolve_voice(req.voice)
        except RequestError as e:
            reply.fail(e)
        previous = self._replies[-1].task if self._replies else None
        reply.task = asyncio.create_task(self._reply(reply, previous), name="wyoming-reply")
        self._replies.append(reply)
        reply.task.add_done_callback(lambda _t: self._replies.remove(reply))
        return reply

    # --- speaking -------------------------------------------------------------------------

    async def _reply(self, reply: Reply, previous: asyncio.Task[None] | None) -> None:
        """Everything a reply sends, in order, after the previous reply's last event."""
        try:
            if previous is not None:
                await asyncio.wait({previous})
            await reply.has_input.wait()
            if reply.error is None:
                await self._speak(reply)
            if reply.error is not None:
                await self._error(reply.error.code, reply.error.text)
            if reply.streaming:
                await reply.input_done.wait()
                await self.write_event(SynthesizeStopped().event())
        except (ConnectionError, OSError):
            pass  # the client left; the read loop ends the connection

    async def _speak(self, reply: Reply) -> None:
        spec = StreamSpec(backend=reply.backend, voice=reply.voice, transport="wyoming",
                          incremental=reply.streaming)
        try:
            stream = await self.face.orch.open(spec)
        except Busy as e:
            reply.fail(RequestError(BUSY, "too many concurrent streams; retry in "
                                    f"{e.retry_after_s:.0f} s"))
            return
        except BackendUnavailable as e:
            reply.fail(RequestError(BACKEND_UNAVAILABLE, str(e)))
            return
        except MorpheusError as e:
            reply.fail(RequestError(ENGINE_ERROR, str(e)))
            return
        try:
            reply.attach(stream)
            if reply.error is None:  # it may have failed while the stream was being admitted
                await self._pump(reply, stream)
        except BadRequest as e:  # e.g. no letters or digits in the whole streamed text
            reply.fail(RequestError(NOTHING_SPEAKABLE, str(e)))
        except TTSError as e:
            reply.fail(RequestError(ENGINE_ERROR, str(e)))
        finally:
            if stream.status == "running":
                stream.interrupt()  # cancelled, or the client left mid-write
            await stream.aclose()

    async def _pump(self, reply: Reply, stream: Stream) -> None:
        fmt = {"rate": PIPELINE_RATE_HZ, "width": SAMPLE_WIDTH_BYTES, "channels": 1}
        started = False
        async for ev in stream:
            if reply.error is not None:
                return
            if not isinstance(ev, AudioOut):
                continue
            if not started:
                started = True
                await self.write_event(AudioStart(**fmt, timestamp=0).event())
            for i in range(0, len(ev.pcm), CHUNK_BYTES):
                at_ms = int(ev.offset_ms + i / BYTES_PER_MS)
                await self.write_event(AudioChunk(**fmt, audio=ev.pcm[i:i + CHUNK_BYTES],
                                                  timestamp=at_ms).event())
        if reply.error is not None:
            return
        if not started:
            reply.fail(RequestError(ENGINE_ERROR, "the engine produced no audio"))
            return
        await self.write_event(AudioStop(timestamp=int(stream.audio_ms)).event())

    # --- the drain (server/deliveries.py) ------------------------------------------------

    transport = "wyoming"

    def owes(self) -> bool:
        """A reply is under way (its `audio-stop` not yet sent), or a streamed one is open.
        Clients play what they received themselves: nothing is owed after `audio-stop`."""
        if not self._is_running:
            return False
        return self._open is not None or any(
            r.task is not None and not r.task.done() for r in self._replies)

    async def close_for_shutdown(self, reason: str) -> None:
        if any(r.task is not None and not r.task.done() for r in self._replies):
            with contextlib.suppress(ConnectionError, OSError):
                await self._error(SERVER_SHUTDOWN, f"{reason}; reconnect to continue")
        await self.disconnect()
        self.writer.close()

    async def disconnect(self) -> None:
        """The client left (or the server stops): stop every reply's synthesis now."""
        self._is_running = False
        self._open = None
        replies = list(self._replies)
        for reply in replies:
            if reply.stream is not None and reply.stream.status == "running":
                reply.stream.interrupt()
            if reply.task is not None:
                reply.task.cancel()
        await asyncio.gather(*(r.task for r in replies if r.task is not None),
                             return_exceptions=True)


__all__ = ["Reply", "WyomingConnection"]
