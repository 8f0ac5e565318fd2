"""One client connection to a Wyoming server (`wyoming` 1.10.x events): timeouts, typed errors,
and the audio of one reply as AudioChunks.

The `wyoming` package frames and parses the events. Its reader answers None both at the end of
the stream and for bytes that are not an event; a thin reader wrapper tells the two apart, so
a server that answers garbage (an HTTP port, say) raises MalformedAudio, not a silent end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from urllib.parse import urlparse

from wyoming.audio import AudioChunk as WyomingChunk
from wyoming.audio import AudioChunkConverter, AudioStart
from wyoming.error import Error
from wyoming.event import Event, Eventable, async_read_event, async_write_event

from adapters.base import AudioChunk
from adapters.errors import (
    BackendTimeout,
    BackendUnavailable,
    EngineError,
    MalformedAudio,
    NoAudioError,
    TTSError,
    UpstreamRejected,
)
from adapters.upstream.pool import Timeouts

MIN_RATE_HZ, MAX_RATE_HZ = 1_000, 384_000


def check_uri(uri: str) -> str:
    """`tcp://host:port`; ValueError names what is wrong. (No unix:// sockets: the setting can
    be changed over the network, and must not point the server at local files.)"""
    parts = urlparse(uri)
    try:
        port = parts.port
    except ValueError as e:
        raise ValueError(f"{uri!r}: a Wyoming server is tcp://host:port ({e})") from None
    if parts.scheme != "tcp" or not parts.hostname or port is None:
        raise ValueError(f"{uri!r}: a Wyoming server is tcp://host:port")
    return uri


class _Reader:
    """The two reads `async_read_event` does, remembering the last line (garbage vs EOF)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self.last_line = b""

    async def readline(self) -> bytes:
        try:
            self.last_line = await self._reader.readline()
        except ValueError:  # a "line" longer than the stream limit: not an event header
            self.last_line = b"<an over-long line>"
            raise
        return self.last_line

    async def readexactly(self, n: int) -> bytes:
        return await self._reader.readexactly(n)


class Connection:
    """Events in and out over one TCP connection; `abort()` closes it at once."""

    def __init__(self, address: str, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, timeouts: Timeouts, backend: str) -> None:
        self.address = address
        self._raw = reader
        self._reader = _Reader(reader)
        self._writer = writer
        self._timeouts = timeouts
        self._backend = backend

    @classmethod
    async def open(cls, address: str, timeouts: Timeouts, backend: str) -> Connection:
        parts = urlparse(address)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(parts.hostname, parts.port), timeouts.connect_s)
        except asyncio.TimeoutError:
            raise BackendTimeout(f"connecting to {address} timed out after "
                                 f"{timeouts.connect_s:g} s", backend=backend) from None
        except OSError as e:
            raise BackendUnavailable(f"cannot connect to {address}: {e}", backend=backend) from e
        return cls(address, reader, writer, timeouts, backend)

    @property
    def closed_by_peer(self) -> bool:
        """The server closed its side (an idle connection it dropped)."""
        return self._raw.at_eof() or self._writer.is_closing()

    async def send(self, *events: Eventable) -> None:
        try:
            for event in events:
                await async_write_event(event.event(), self._writer)
        except (ConnectionError, OSError) as e:
            raise EngineError(f"{self.address} dropped the connection: {e}",
                              backend=self._backend) from e

    async def receive(self) -> Event:
        """The next event; typed errors for silence, a closed connection and garbage."""
        try:
            event = await asyncio.wait_for(async_read_event(self._reader),  # type: ignore[arg-type]
                                           self._timeouts.read_s)
        except asyncio.TimeoutError:
            raise BackendTimeout(f"{self.address} sent nothing for {self._timeouts.read_s:g} s",
                                 backend=self._backend) from None
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as e:
            raise EngineError(f"{self.address} dropped the connection mid-event: {e!r}",
                              backend=self._backend) from e
        except (KeyError, TypeError, AttributeError) as e:  # JSON, but not an event header
            raise MalformedAudio(f"{self.address} sent a malformed Wyoming event: {e!r}",
                                 backend=self._backend) from e
        if event is None:
            if self._reader.last_line:
                raise MalformedAudio(f"{self.address} did not answer with Wyoming events: "
                                     f"{self._reader.last_line[:60]!r}", backend=self._backend)
            raise EngineError(f"{self.address} closed the connection before the reply ended",
                              backend=self._backend)
        return event

    def abort(self) -> None:
        """Close now, without flushing or waiting: the server sees the client go at once."""
        transport = self._writer.transport
        if not transport.is_closing():
            transport.abort()

    async def aclose(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass


def error_from(event: Event, address: str, backend: str) -> TTSError:
    """A Wyoming `error` event -> the typed error: a missing voice is our request's fault."""
    err = Error.from_event(event)
    code = err.code or ""
    message = f"{address} answered error {code or '(no code)'}: {err.text}"
    if code.endswith(("NotFound", "NotFoundError")):
        return UpstreamRejected(message, backend=backend)
    return EngineError(message, backend=backend)


async def reply_audio(conn: Connection, until: str,
                      backend: str) -> AsyncGenerator[AudioChunk, None]:
    """Audio of one reply, as it arrives, until the `until` event (audio-stop for a
    `synthesize`, synthesize-stopped for a streaming round); then an empty final chunk.

    Each chunk keeps its own rate (audio-start and every audio-chunk state it); width and
    channels are converted to s16 mono. No audio at all raises NoAudioError.
    """
    to_s16_mono = AudioChunkConverter(width=2, channels=1)
    rate = 0
    samples = 0
    while True:
        event = await conn.receive()
        if WyomingChunk.is_type(event.type) or AudioStart.is_type(event.type):
            try:
                fmt = (int(event.data["rate"]), int(event.data["width"]),
                       int(event.data["channels"]))
            except (KeyError, TypeError, ValueError) as e:
                raise MalformedAudio(f"{conn.address}: {event.type} without a usable format: "
                                     f"{event.data!r}", backend=backend) from e
            rate = _checked_format(*fmt, conn.address, backend)
            if AudioStart.is_type(event.type) or not event.payload:
                continue
            if len(event.payload) % (fmt[1] * fmt[2]):
                raise MalformedAudio(f"{conn.address}: an audio-chunk of {len(event.payload)} "
                                     f"bytes is not whole frames of {fmt[1] * fmt[2]} bytes",
                                     backend=backend)
            pcm = to_s16_mono.convert(WyomingChunk(*fmt, event.payload)).audio
            samples += len(pcm) // 2
            yield AudioChunk(pcm, rate)
        elif event.type == until:
            break
        elif Error.is_type(event.type):
            raise error_from(event, conn.address, backend)
        # anything else (audio-stop between sentences of a round, ping, ...) is not the end
    if not samples:
        raise NoAudioError(f"{conn.address} finished without audio", backend=backend)
    yield AudioChunk(b"", rate, is_final=True)


def _checked_format(rate: int, width: int, channels: int, address: str, backend: str) -> int:
    if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ or width not in (1, 2, 3, 4) or channels < 1:
        raise MalformedAudio(f"{address}: unusable audio format rate={rate} width={width} "
                             f"channels={channels}", backend=backend)
    return rate


__all__ = ["Connection", "check_uri", "error_from", "reply_audio"]
