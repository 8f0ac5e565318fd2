"""A real HTTP server on 127.0.0.1 that streams /v1/completions SSE as llama.cpp's server does.

Driven by a `Script` (the text of each SSE event, the token rate, a failure mode), it speaks
HTTP/1.1 with keep-alive and chunked transfer encoding over plain asyncio sockets, so tests see
exactly what a client does on the wire, and it logs every connection's open and close so a test
can assert that a cancelled stream closed its upstream socket.

`orpheus_script(...)` answers like an Orpheus model: as many frames as the prompt's text would
take to speak, paced at a given multiple of real time. `python -m tests.llama_protocol_server
--port N --realtime 1.3` serves that from a child process (for benchmarks).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.ports import refused_port

Failure = Literal["http500", "http503", "http400", "stall", "drop", "error_event"]


@dataclass
class Script:
    """What the server streams for one request."""

    events: list[str]  # the `text` of each SSE event, in order (tokens, several, or fragments)
    tokens_per_s: float = 0.0  # 0 = as fast as possible; else paced by completed tokens
    fail: Failure | None = None
    fail_after_events: int = 0  # for stall / drop / error_event: events sent before failing
    finish_reason: str = "stop"
    split_writes: bool = False  # write each SSE event in two TCP writes (a line cut in half)
    pause: tuple[int, float] | None = None  # (after this many events, hold this many seconds)


@dataclass
class Connection:
    id: int
    opened_at: float
    closed_at: float | None = None
    closed_by: str | None = None  # "client" (EOF/reset seen) or "server"
    requests: int = 0


@dataclass
class Request:
    connection_id: int
    method: str
    path: str
    body: dict[str, Any] = field(default_factory=dict)
    first_event_at: float | None = None  # time.monotonic() when the first text event was sent
    events_sent: int = 0  # text events of the script written so far


def script_from_tokens(
    tokens: list[str], *, per_event: int = 1, split_tokens: bool = False, tokens_per_s: float = 0.0
) -> Script:
    """Group token strings `per_event` to an event; `split_tokens` cuts each in two events."""
    events: list[str] = []
    for i in range(0, len(tokens), per_event):
        text = "".join(tokens[i : i + per_event])
        if split_tokens and len(text) > 4:
            cut = len(text) // 2 + 3  # lands inside a token, never on a boundary
            events += [text[:cut], text[cut:]]
        else:
            events.append(text)
    return Script(events=events, tokens_per_s=tokens_per_s)


FRAME_S = 2048 / 24_000  # one SNAC frame: 7 tokens, 85.3 ms of audio
SPEECH_MS_PER_CHAR = 65.0  # about how long Orpheus takes to say one character of English


def orpheus_script(body: dict[str, Any], *, realtime: float = 1.3,
                   ms_per_char: float = SPEECH_MS_PER_CHAR) -> Script:
    """Frames for the text in an Orpheus prompt (`voice: text<|eot_id|>`), reproducible per
    text, one token per event at `realtime` x real time (7 tokens = 85.3 ms of audio)."""
    import random
    import zlib

    prompt = str(body.get("prompt", ""))
    text = prompt.split(": ", 1)[-1].split("<|eot_id|>", 1)[0]
    frames = max(1, round(len(text) * ms_per_char / 1000 / FRAME_S))
    rng = random.Random(zlib.crc32(text.encode()))
    tokens = [f"<custom_token_{rng.randrange(4096) + 10 + 4096 * slot}>"
              for _ in range(frames) for slot in range(7)]
    return Script(events=tokens, tokens_per_s=realtime * 7 / FRAME_S)


def refused_url() -> str:
    """A loopback URL where connecting is refused (a port held, never listening)."""
    return f"http://127.0.0.1:{refused_port()}/v1/completions"


class LlamaProtocolServer:
    """`async with LlamaProtocolServer(script) as srv:` then point a client at `srv.url`."""

    def __init__(self, script: Script | Callable[[dict[str, Any]], Script]) -> None:
        self._script = script
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections: list[Connection] = []
        self.requests: list[Request] = []
        self.loading = False  # GET /health answers 503 like llama.cpp while a model loads
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/completions"

    async def __aenter__(self) -> LlamaProtocolServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._on_connection, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def open_connections(self) -> list[Connection]:
        return [c for c in self.connections if c.closed_at is None]

    async def wait_all_closed(self, timeout_s: float) -> float:
        """Wait until every connection is closed; return the time the last one closed."""
        deadline = time.monotonic() + timeout_s
        while self.open_connections():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.open_connections())} connection(s) still open")
            await asyncio.sleep(0.005)
        return max((c.closed_at or 0.0) for c in self.connections)

    # -- connection handling

    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Connection(id=len(self.connections), opened_at=time.monotonic())
        self.connections.append(conn)
        peer = _Peer(reader)
        try:
            while True:
                head = await peer.read_head()
                if head is None:
                    conn.closed_by = "client"
                    return
                conn.requests += 1
                keep_alive = await self._serve(conn, head, peer, writer)
                if not keep_alive:
                    conn.closed_by = conn.closed_by or "server"
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            conn.closed_by = "client"
        except asyncio.CancelledError:
            conn.closed_by = conn.closed_by or "server"
        finally:
            conn.closed_at = time.monotonic()
            writer.close()
            self._tasks.discard(task)

    async def _serve(self, conn: Connection, head: tuple[str, str, dict[str, str]],
                     peer: _Peer, writer: asyncio.StreamWriter) -> bool:
        method, path, headers = head
        raw = await peer.read_exactly(int(headers.get("content-length", "0")))
        body: dict[str, Any] = json.loads(raw) if raw else {}
        request = Request(conn.id, method, path, body)
        self.requests.append(request)
        if method == "GET" and path in ("/health", "/v1/health"):
            if self.loading:
                await _json(writer, 503, {"error": {"code": 503, "message": "Loading model",
                                                    "type": "unavailable_error"}})
            else:
                await _json(writer, 200, {"status": "ok"})
            return True
        if method != "POST" or path not in ("/v1/completions", "/completion", "/completions"):
            await _json(writer, 404, {"error": {"code": 404, "message": "File Not Found",
                                                "type": "not_found_error"}})
            return True
        script = self._script(body) if callable(self._script) else self._script
        codes = {"http500": 500, "http503": 503, "http400": 400}
        if script.fail in codes:
            status = codes[script.fail]  # type: ignore[index]
            await _json(writer, status, {"error": {"code": status, "message": "scripted failure",
                                                   "type": "server_error"}})
            return True
        return await self._stream(conn, request, script, peer, writer)

    async def _stream(self, conn: Connection, request: Request, script: Script,
                      peer: _Peer, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nServer: llama.cpp\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\nKeep-Alive: timeout=5, max=100\r\n"
                     b"Access-Control-Allow-Origin: \r\n\r\n")
        await writer.drain()
        gone = asyncio.ensure_future(peer.wait_eof())  # the client closing mid-stream
        try:
            return await self._events(conn, request, script, writer, gone)
        finally:
            gone.cancel()  # and wait, so the next request's read does not race this one
            await asyncio.gather(gone, return_exceptions=True)

    async def _events(self, conn: Connection, request: Request, script: Script,
                      writer: asyncio.StreamWriter, gone: asyncio.Future[None]) -> bool:
        started = time.monotonic()
        model = str(request.body.get("model", "orpheus"))
        tokens_done = 0
        for index, text in enumerate(script.events):
            if script.fail is not None and index == script.fail_after_events:
                return await self._fail(conn, script, writer, gone)
            if script.pause is not None and index == script.pause[0]:
                if await _sleep_or_gone(script.pause[1], gone):
                    conn.closed_by = "client"
                    return False
                started += script.pause[1]  # the pace goes on after the pause
            tokens_done += text.count(">")
            if script.tokens_per_s > 0:
                due = started + tokens_done / script.tokens_per_s
                if await _sleep_or_gone(due - time.monotonic(), gone):
                    conn.closed_by = "client"
                    return False
            elif gone.done():
                conn.closed_by = "client"
                return False
            await _event(writer, _chunk(model, text, None), split=script.split_writes)
            request.first_event_at = request.first_event_at or time.monotonic()
            request.events_sent += 1
        if script.fail is not None:
            return await self._fail(conn, script, writer, gone)
        final = _chunk(model, "", script.finish_reason)
        final["usage"] = {"completion_tokens": tokens_done, "prompt_tokens": 20,
                          "total_tokens": tokens_done + 20}
        final["timings"] = {"predicted_n": tokens_done,
                            "predicted_ms": 1000 * (time.monotonic() - started)}
        await _event(writer, final)
        writer.write(_frame(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()
        return True

    async def _fail(self, conn: Connection, script: Script, writer: asyncio.StreamWriter,
                    gone: asyncio.Future[None]) -> bool:
        if script.fail == "stall":
            await gone  # hold the socket open, silent, until the client gives up
            conn.closed_by = "client"
            return False
        if script.fail == "error_event":
            await _event(writer, {"error": {"code": 500, "message": "scripted mid-stream error",
                                            "type": "server_error"}})
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        conn.closed_by = "server"  # "drop": close mid-body, no terminating chunk
        return False


class _Peer:
    """Buffered reads of the request side; also notices the client closing mid-response."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._buf = bytearray()
        self._eof = False

    async def _more(self) -> bool:
        data = await self._reader.read(65536)
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    async def read_head(self) -> tuple[str, str, dict[str, str]] | None:
        while b"\r\n\r\n" not in self._buf:
            if self._eof or not await self._more():
                return None
        end = self._buf.index(b"\r\n\r\n")
        lines = self._buf[:end].decode("latin-1").split("\r\n")
        del self._buf[: end + 4]
        method, target, _version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return method, target.split("?", 1)[0], headers

    async def read_exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            if self._eof or not await self._more():
                raise asyncio.IncompleteReadError(bytes(self._buf), n)
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    async def wait_eof(self) -> None:
        while not self._eof:
            try:
                await self._more()
            except ConnectionError:
                self._eof = True


def _chunk(model: str, text: str, finish_reason: str | None) -> dict[str, Any]:
    return {
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}],
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "b0000-test",
        "object": "text_completion",
        "id": "cmpl-test",
    }


def _frame(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


async def _event(writer: asyncio.StreamWriter, obj: dict[str, Any], *, split: bool = False) -> None:
    payload = b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"
    if split:
        half = len(payload) // 2
        writer.write(_frame(payload[:half]))
        await writer.drain()
        await asyncio.sleep(0.001)  # separate TCP segments, so the reader sees half a line
        writer.write(_frame(payload[half:]))
    else:
        writer.write(_frame(payload))
    await writer.drain()


async def _json(writer: asyncio.StreamWriter, status: int, obj: dict[str, Any]) -> None:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error",
              503: "Service Unavailable"}[status]
    body = json.dumps(obj).encode()
    writer.write(f"HTTP/1.1 {status} {reason}\r\nServer: llama.cpp\r\n"
                 f"Content-Type: application/json; charset=utf-8\r\n"
                 f"Content-Length: {len(body)}\r\nKeep-Alive: timeout=5, max=100\r\n\r\n"
                 .encode() + body)
    await writer.drain()


async def _sleep_or_gone(delay_s: float, gone: asyncio.Future[None]) -> bool:
    """Sleep `delay_s`; True if the client went away meanwhile."""
    if delay_s > 0:
        await asyncio.wait([gone], timeout=delay_s)
    return gone.done()


async def _serve_forever(port: int, realtime: float, ms_per_char: float) -> None:
    server = LlamaProtocolServer(
        lambda body: orpheus_script(body, realtime=realtime, ms_per_char=ms_per_char))
    await server.start(port)
    print(f"listening on {server.url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.aclose()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="An Orpheus-like llama.cpp-protocol server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--realtime", type=float, default=1.3, help="token pace, x real time")
    parser.add_argument("--ms-per-char", type=float, default=SPEECH_MS_PER_CHAR)
    args = parser.parse_args()
    asyncio.run(_serve_forever(args.port, args.realtime, args.ms_per_char))


if __name__ == "__main__":
    main()
