"""What the benchmark measures: one `Subject` per way of turning text into audio.

A subject is a Morpheus transport for one backend (HTTP, WebSocket, WebRTC, Wyoming), a peer
server (Piper's own HTTP server, wyoming-piper) or a raw engine in this process (bench/raw.py).
Each `speak()` returns a `StreamRecord`: when the request went out and when each piece of audio
arrived. Adding a transport is one small class here.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
from abc import ABC, abstractmethod
from typing import Any

import aiohttp

from bench.record import StreamRecord

SPEAK_TIMEOUT_S = 900.0  # a paced 5-minute narration, with room
VOICED_DBFS = -70.0  # a WebRTC frame louder than this carries the response (idle frames are 0)
PLAYOUT_TIMEOUT_S = 10.0  # after response.done, the track's last frames arrive within this


class Subject(ABC):
    """Text in, a StreamRecord out. `paced` subjects deliver at real time (a long text takes
    its own duration), so first-audio trials stop them once the first audio is in."""

    kind = "morpheus"  # morpheus | peer | raw
    transport = "http"
    paced = False

    def __init__(self, backend: str, pid: int | None = None) -> None:
        self.backend = backend
        self.pid = pid  # the process that does the work (for RSS and CPU)

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.backend}/{self.transport}"

    async def open(self) -> None:  # noqa: B027 (an optional hook)
        """Connect (connections that last the whole run)."""

    async def close(self) -> None:  # noqa: B027 (an optional hook)
        """Disconnect."""

    @abstractmethod
    async def speak(self, text: str, *, first_audio_only: bool = False) -> StreamRecord:
        """Ask for `text` and record its audio; `first_audio_only` stops after the first."""


def _ms(nbytes: int, rate_hz: int) -> float:
    return 1000 * nbytes / 2 / rate_hz  # s16 mono


# --- Morpheus ------------------------------------------------------------------------------


class MorpheusHttp(Subject):
    """POST /v1/audio/speech, PCM, read as fast as it comes; one chunk = one HTTP chunk.
    `backend=None` asks for the active backend (no `backend` field)."""

    LOW_LATENCY = True  # first-audio trials also ask with low_latency: true

    def __init__(self, url: str, http: aiohttp.ClientSession, backend: str | None,
                 pid: int | None = None) -> None:
        super().__init__(backend or "active", pid)
        self.url, self.http, self.ask_for = url, http, backend

    async def speak(self, text: str, *, first_audio_only: bool = False,
                    fields: dict[str, Any] | None = None) -> StreamRecord:
        """`fields` adds request fields (e.g. low_latency) to this one request."""
        rec = StreamRecord(time.monotonic())
        body: dict[str, Any] = {"input": text, "response_format": "pcm", **(fields or {})}
        if self.ask_for:
            body["backend"] = self.ask_for
        try:
            async with self.http.post(self.url + "/v1/audio/speech", json=body) as r:
                rec.http_status = r.status
                if r.status != 200:
                    rec.error = (await r.text())[:300]
                    rec.end(time.monotonic(), "busy" if r.status == 429 else "error")
                    return rec
                rec.backend = r.headers.get("X-Backend")
                rec.degraded = r.headers.get("X-Degraded") == "true"
                rate = int(r.headers.get("X-Sample-Rate", "24000"))
                pending = 0
                async for data, end_of_chunk in r.content.iter_chunks():
                    pending += len(data)
                    if end_of_chunk and pending:
                        rec.add(time.monotonic(), _ms(pending, rate))
                        pending = 0
                        if first_audio_only:
                            break
                if pending:
                    rec.add(time.monotonic(), _ms(pending, rate))
        except aiohttp.ClientError as e:
            rec.error = f"{type(e).__name__}: {e}"
            rec.end(time.monotonic(), "error")
            return rec
        rec.end(time.monotonic(), "cancelled" if first_audio_only else "ok")
        return rec


class MorpheusWs(Subject):
    """GET /v1/audio/speech/ws: the whole text in one append; binary PCM frames out. A reader
    task keeps the connection served between streams (it answers the server's heartbeat)."""

    transport = "ws"
    paced = True  # the server keeps a bounded lead over the (modelled) playback

    def __init__(self, url: str, http: aiohttp.ClientSession, backend: str,
                 pid: int | None = None) -> None:
        super().__init__(backend, pid)
        self.url, self.http = url, http
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.rate_hz = 24000
        self._inbox: asyncio.Queue[tuple[float, aiohttp.WSMessage]] = asyncio.Queue(10_000)
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.ws = await self.http.ws_connect(self.url.replace("http", "ws", 1)
                                             + "/v1/audio/speech/ws")
        self._reader = asyncio.create_task(self._read(self.ws))
        created = await self._event("session.created")
        self.rate_hz = int(created["session"]["sample_rate"])
        await self.ws.send_json({"type": "session.update", "session": {"backend": self.backend}})
        await self._event("session.updated")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:  # stamped on arrival, before any queueing
            await self._inbox.put((time.monotonic(), msg))
        await self._inbox.put((time.monotonic(), aiohttp.WSMessage(aiohttp.WSMsgType.CLOSED,
                                                                   None, None)))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _event(self, kind: str) -> dict[str, Any]:
        return await asyncio.wait_for(self._next(kind), 30)

    async def _next(self, kind: str) -> dict[str, Any]:
        while True:
            _, msg = await self._inbox.get()
            if msg.type == aiohttp.WSMsgType.TEXT:
                ev = json.loads(msg.data)
                if ev["type"] == kind:
                    return ev
                if ev["type"] == "error":
                    raise RuntimeError(f"{self.name}: {ev}")
            elif msg.type != aiohttp.WSMsgType.BINARY:
                raise RuntimeError(f"{self.name}: connection closed before {kind}")

    async def speak(self, text: str, *, first_audio_only: bool = False) -> StreamRecord:
        if self.ws is None or self.ws.closed:  # the server may close an idle connection
            await self.close()
            await self.open()
        assert self.ws is not None
        while not self._inbox.empty():  # nothing of an earlier response counts
            self._inbox.get_nowait()
        rec = StreamRecord(time.monotonic())
        await self.ws.send_json({"type": "input_text.append", "text": text})
        await self.ws.send_json({"type": "input_text.done"})
        await asyncio.wait_for(self._receive(rec, first_audio_only), SPEAK_TIMEOUT_S)
        return rec

    async def _receive(self, rec: StreamRecord, first_audio_only: bool) -> None:
        assert self.ws is not None
        cancelled = False
        while True:
            at, msg = await self._inbox.get()
            if msg.type == aiohttp.WSMsgType.BINARY:
                if not cancelled:
                    rec.add(at, _ms(len(msg.data), self.rate_hz))
                if first_audio_only and not cancelled:
                    cancelled = True
                    await self.ws.send_json({"type": "response.cancel"})
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            ev = json.loads(msg.data)
            if ev["type"] == "error":
                rec.error = ev.get("message")
                rec.status = "busy" if ev.get("code") == "busy" else "error"
            elif ev["type"] == "response.done":
                status = {"completed": "ok", "cancelled": "cancelled"}.get(ev["status"])
                rec.backend, rec.degraded = ev.get("backend"), bool(ev.get("degraded"))
                rec.end(at, status or ("error" if rec.status == "ok" else rec.status))
                return
        rec.error = rec.error or "the connection closed mid-response"
        rec.end(time.monotonic(), "error")


class MorpheusWebRtc(Subject):
    """POST /webrtc/offer from an aiortc client (receive-only), text over the data channel;
    audio = decoded 20 ms frames from the first non-silent one (so first audio includes the
    client's jitter buffer, as a browser's would). A fresh connection per stream."""

    transport = "webrtc"
    paced = True

    def __init__(self, url: str, http: aiohttp.ClientSession, backend: str,
                 pid: int | None = None) -> None:
        super().__init__(backend, pid)
        self.url, self.http = url, http

    async def speak(self, text: str, *, first_audio_only: bool = False) -> StreamRecord:
        from tests.rtc_client import Received, RtcClient

        client = RtcClient(self.url, self.http)
        try:
            await client.connect(with_mic=False)
            await client.next_event("session.created")
            client.send(type="session.update", session={"backend": self.backend})
            await client.next_event("session.updated")
            rec = StreamRecord(time.monotonic())
            heard, played_out = asyncio.Event(), asyncio.Event()
            got_ms, want_ms = [0.0], [float("inf")]

            def on_frame(f: Received) -> None:
                if f.at < rec.requested_at or (not rec.arrivals and f.dbfs < VOICED_DBFS):
                    return
                rec.add(f.at, 1000 * f.samples / 48000)
                got_ms[0] += 1000 * f.samples / 48000
                heard.set()
                if got_ms[0] >= want_ms[0]:
                    played_out.set()

            client.on_frame = on_frame
            client.send(type="input_text.append", text=text)
            client.send(type="input_text.done")
            if first_audio_only:
                await asyncio.wait_for(heard.wait(), 60)
                client.send(type="response.cancel")
                await client.next_event("response.done", timeout=30)
                rec.end(time.monotonic(), "cancelled")
                return rec
            done = await client.next_event("response.done", timeout=SPEAK_TIMEOUT_S)
            if done["status"] != "completed":
                errors = [e for e in client.log if e["type"] == "error"]
                rec.error = errors[-1].get("message") if errors else done["status"]
                busy = bool(errors) and errors[-1].get("code") == "busy"
                rec.end(time.monotonic(), "busy" if busy else "error")
                return rec
            rec.backend, rec.degraded = done.get("backend"), bool(done.get("degraded"))
            want_ms[0] = float(done["audio_ms"])  # the track still plays out what it holds
            if got_ms[0] >= want_ms[0]:
                played_out.set()
            try:
                await asyncio.wait_for(played_out.wait(), PLAYOUT_TIMEOUT_S)
            except asyncio.TimeoutError:  # the track did not play what the server says it sent
                rec.error = f"heard {got_ms[0]:.0f} of {want_ms[0]:.0f} ms"
                rec.end(time.monotonic(), "error")
                return rec
            rec.end(rec.arrivals[-1][0] if rec.arrivals else time.monotonic(), "ok")
            return rec
        finally:
            await client.close()


# --- Wyoming (Morpheus' face and wyoming-piper speak the same protocol) -------------------


class WyomingTcp(Subject):
    """One TCP connection per request, as Home Assistant makes them: synthesize -> audio-start
    -> audio-chunk* -> audio-stop."""

    transport = "wyoming"

    def __init__(self, host: str, port: int, backend: str, pid: int | None = None,
                 kind: str = "morpheus") -> None:
        super().__init__(backend, pid)
        self.host, self.port, self.kind = host, port, kind

    async def speak(self, text: str, *, first_audio_only: bool = False) -> StreamRecord:
        from wyoming.audio import AudioChunk, AudioStart, AudioStop
        from wyoming.client import AsyncTcpClient
        from wyoming.error import Error
        from wyoming.tts import Synthesize

        rec = StreamRecord(time.monotonic())

        async def converse() -> None:
            bytes_per_ms = 2 * 22050 / 1000
            async with AsyncTcpClient(self.host, self.port) as c:
                await c.write_event(Synthesize(text=text).event())
                while True:
                    event = await c.read_event()
                    if event is None:
                        rec.error = "the server closed the connection"
                        rec.end(time.monotonic(), "error")
                        return
                    if AudioStart.is_type(event.type):
                        start = AudioStart.from_event(event)
                        bytes_per_ms = start.rate * start.width * start.channels / 1000
                    elif AudioChunk.is_type(event.type):
                        audio = AudioChunk.from_event(event).audio
                        rec.add(time.monotonic(), len(audio) / bytes_per_ms)
                        if first_audio_only:
                            rec.end(time.monotonic(), "cancelled")
                            return
                    elif AudioStop.is_type(event.type):
                        rec.end(time.monotonic(), "ok")
                        return
                    elif Error.is_type(event.type):
                        rec.error = Error.from_event(event).text
                        rec.end(time.monotonic(), "error")
                        return

        try:
            await asyncio.wait_for(converse(), SPEAK_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError) as e:
            rec.error = f"{type(e).__name__}: {e}"
            rec.end(time.monotonic(), "error")
        return rec


# --- Piper's own HTTP server ---------------------------------------------------------------


class PiperHttpPeer(Subject):
    """`python -m piper.http_server`: POST /synthesize answers with a whole WAV file, so its
    first audio is its time to first byte."""

    kind = "peer"

    def __init__(self, url: str, http: aiohttp.ClientSession, pid: int | None = None) -> None:
        super().__init__("piper", pid)
        self.url, self.http = url, http

    @property
    def name(self) -> str:
        return "peer/piper.http_server/http"

    async def speak(self, text: str, *, first_audio_only: bool = False) -> StreamRecord:
        rec = StreamRecord(time.monotonic())
        head = b""
        rate = 0
        try:
            async with self.http.post(self.url + "/synthesize", json={"text": text}) as r:
                if r.status != 200:
                    rec.error = (await r.text())[:300]
                    rec.end(time.monotonic(), "busy" if r.status in (429, 503) else "error")
                    return rec
                async for data in r.content.iter_any():
                    if not rate:  # the RIFF header (Python's wave module writes 44 bytes)
                        head += data
                        if len(head) < 44:
                            continue
                        rate = struct.unpack("<I", head[24:28])[0]
                        data, head = head[44:], b""
                    rec.add(time.monotonic(), _ms(len(data), rate))
        except aiohttp.ClientError as e:
            rec.error = f"{type(e).__name__}: {e}"
            rec.end(time.monotonic(), "error")
            return rec
        rec.end(time.monotonic(), "ok")
        return rec


class WyomingPiperPeer(WyomingTcp):
    """wyoming-piper (the Home Assistant standard) with the same voice."""

    def __init__(self, host: str, port: int, pid: int | None = None) -> None:
        super().__init__(host, port, "piper", pid, kind="peer")

    @property
    def name(self) -> str:
        return "peer/wyoming-piper/wyoming"


__all__ = ["MorpheusHttp", "MorpheusWebRtc", "MorpheusWs", "PiperHttpPeer", "Subject",
           "WyomingPiperPeer", "WyomingTcp"]
