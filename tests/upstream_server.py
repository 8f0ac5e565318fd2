"""The base of the protocol test servers (XTTS, Coqui, ...): a real aiohttp server on
127.0.0.1, counting its open connections, streaming audio paced or as fast as it is made,
with failures on demand.

Failures (`server.fault`, or `POST /_control` from another process): "stall" (accept, never answer), "http500", "http503", "http401",
"http403", "garbage" (200 and random bytes), "drop" (close the socket after
`drop_after_chunks` audio chunks). `fault_times` limits how many requests fail (None = all).
A refused upstream is a port held that never listens (`refused_url()`); `kill()` turns a
running server into one: listener closed, every open connection cut, as when it crashes.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from tests import piper_speech
from tests.ports import refused_port

Fault = Literal["stall", "http500", "http503", "http401", "http403", "garbage", "drop"]
BYTES_PER_SAMPLE = 2


def refused_url() -> str:
    """A loopback URL where connecting is refused (a port held, never listening)."""
    return f"http://127.0.0.1:{refused_port()}"


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None  # parsed JSON / form, when the route reads one
    audio_ms: float = 0.0  # audio the server sent for it
    chunks: int = 0
    first_audio_at: float | None = None  # time.monotonic()
    started_at: float = field(default_factory=time.monotonic)


class UpstreamTestServer:
    """Subclasses add their protocol's routes in `routes()`."""

    def __init__(self, *, port: int = 0, rtf: float = 0.0, chunk_ms: float = 200.0,
                 cache: bool = False) -> None:
        self.port = port
        self.rtf = rtf  # pace audio at this many x real time; 0 = as fast as it is made
        self.chunk_ms = chunk_ms
        # Replay the speech of a text asked before instead of running Piper again: then the
        # server answers in microseconds, and a benchmark sees only what lies in between.
        self.cache = cache
        self._spoken: dict[tuple[str, int, float | None], list[bytes]] = {}
        self.fault: Fault | None = None
        self.fault_times: int | None = None
        self.drop_after_chunks = 1
        self.requests: list[Recorded] = []
        self.chunks_sent = 0  # audio chunks written over the server's life
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    # -- lifecycle

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/_control", self.control)
        self.routes(app)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1,
                                     access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await self._site.start()
        self.port = self._site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def kill(self) -> None:
        """Stop listening and cut every connection, as a crashed server would."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        if self._runner is not None and self._runner.server is not None:
            for handler in self._runner.server.connections:
                if handler.transport is not None:
                    handler.transport.abort()

    async def aclose(self) -> None:
        await self.kill()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> UpstreamTestServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open_connections(self) -> int:
        server = self._runner.server if self._runner is not None else None
        return len(server.connections) if server is not None else 0

    async def wait_closed(self, timeout_s: float) -> None:
        """Until no connection is open (a client that closed its request shows here)."""
        deadline = time.monotonic() + timeout_s
        while self.open_connections():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.open_connections()} connection(s) still open")
            await asyncio.sleep(0.01)

    def audio_requests(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    async def control(self, request: web.Request) -> web.Response:
        """`POST /_control {"cache": false, "fault": "http503", "fault_times": 1, "rtf": 2}`:
        the knobs above, for a server running in another process (the benchmark)."""
        body = await request.json()
        for key in ("cache", "fault", "fault_times", "rtf", "chunk_ms", "drop_after_chunks"):
            if key in body:
                setattr(self, key, body[key])
        return web.json_response({"cache": self.cache, "fault": self.fault, "rtf": self.rtf})

    # -- helpers for routes

    async def speak(self, text: str, rate_hz: int, length_scale: float | None = None
                    ) -> AsyncIterator[bytes]:
        """Piper's speech for `text`, a sentence at a time (replayed when `cache` is on)."""
        key = (text, rate_hz, length_scale)
        cached = self._spoken.get(key) if self.cache else None
        if cached is not None:
            for sentence in cached:
                yield sentence
            return
        made = []
        async for sentence in piper_speech.speak(text, rate_hz, length_scale):
            made.append(sentence)
            yield sentence
        if self.cache:
            self._spoken[key] = made

    def record(self, request: web.Request, body: Any = None) -> Recorded:
        rec = Recorded(request.method, request.path, dict(request.query),
                       {k.lower(): v for k, v in request.headers.items()}, body)
        self.requests.append(rec)
        return rec

    async def injected_fault(self, request: web.Request, content_type: str
                             ) -> web.StreamResponse | None:
        """The failure asked for, instead of this request's answer; None = answer normally.
        ("drop" happens later, in `stream_audio`.)"""
        fault = self.fault
        if fault is None or fault == "drop" or not self._take_fault():
            return None
        if fault == "stall":
            await asyncio.Event().wait()  # until the client gives up (the handler is cancelled)
        if fault.startswith("http"):
            status = int(fault[4:])
            return web.json_response({"detail": f"injected failure {status}"}, status=status)
        junk = random.Random(len(self.requests)).randbytes(16_384)
        return web.Response(body=junk, content_type=content_type.split(";")[0])

    def _take_fault(self) -> bool:
        if self.fault_times is None:
            return True
        if self.fault_times <= 0:
            return False
        self.fault_times -= 1
        return True

    async def stream_audio(self, request: web.Request, rec: Recorded, *, content_type: str,
                           head: bytes, pcm: AsyncIterator[bytes], rate_hz: int,
                           content_length: int | None = None) -> web.StreamResponse:
        """`head` (a WAV header, or nothing) then the PCM in `chunk_ms` pieces, paced by
        `rtf`; stops when the client goes away, or drops the socket when told to."""
        resp = web.StreamResponse(headers={"Content-Type": content_type})
        if content_length is not None:
            resp.content_length = content_length
        else:
            resp.enable_chunked_encoding()
        await resp.prepare(request)
        if head:
            await resp.write(head)
        drop = self.fault == "drop" and self._take_fault()
        piece = max(2, int(rate_hz * self.chunk_ms / 1000) * BYTES_PER_SAMPLE)
        next_at = 0.0  # paced like a model making audio: a chunk per chunk_ms / rtf at most
        async for sentence in pcm:
            for i in range(0, len(sentence), piece):
                data = sentence[i : i + piece]
                if drop and rec.chunks >= self.drop_after_chunks:
                    assert request.transport is not None
                    request.transport.abort()
                    return resp
                ms = 1000 * len(data) / BYTES_PER_SAMPLE / rate_hz
                if self.rtf > 0:
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                    next_at = time.monotonic() + ms / 1000 / self.rtf
                await resp.write(data)
                rec.audio_ms += ms
                rec.chunks += 1
                self.chunks_sent += 1
                rec.first_audio_at = rec.first_audio_at or time.monotonic()
        await resp.write_eof()
        return resp


class FaultyRoute(UpstreamTestServer):
    """One POST route (a JSON body) that only ever fails, the way `fault` says."""

    def __init__(self, path: str, fault: Fault) -> None:
        super().__init__()
        self.path = path
        self.fault = fault

    def routes(self, app: web.Application) -> None:
        app.router.add_post(self.path, self.answer)

    async def answer(self, request: web.Request) -> web.StreamResponse:
        self.record(request, await request.json())
        answer = await self.injected_fault(request, "audio/mpeg")
        return answer or web.json_response({"detail": "no fault set"}, status=500)


def serve_forever(server: UpstreamTestServer) -> None:
    """For `python -m tests.<x>_server --port N`: run until SIGINT/SIGTERM."""
    import signal

    async def main() -> None:
        await server.start()
        print(f"listening on {server.url} (pid {os.getpid()})", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.aclose()

    asyncio.run(main())
