"""The soak's clients: one request over each face, as a real client makes it, with the client's
own faults (a cancel at a random point, a client that vanishes mid-stream).

Every request returns an `Attempt`: the stream as the client heard it (bench.record's
`StreamRecord`: arrivals, the backend that spoke, the degraded flag), what it ended as, and any
5xx it saw. Outcomes: `completed`, `cancelled` (by the client: a cancel or a vanish),
`refused` (429/503 with Retry-After, a busy event, a connection refused by a replica that is
down: the worker retries), `failed` (anything else, with the reason).

- HTTP `/v1/audio/speech`: PCM streamed, SSE streamed (its `speech.audio.done` says whether
  it failed over) or whole (`stream: false`, `X-Degraded` exact); a cancel is a DELETE of the
  request id at the replica that serves it, or a disconnect.
- Native WebSocket: one connection per worker and backend, reused; the client plays what it
  receives in real time (`Player`) and reports its position every `REPORT_S`, as a player
  does; a request ends when its audio is played out. Cancel: `response.cancel`.
- WebRTC: bench.clients' aiortc client (tests/rtc_client.py), a new peer per request; a
  playout that does not finish is a failure. Cancel: `response.cancel`.
- ElevenLabs multi-context WebSocket, pipecat-style turns: text pieces, then `flush` and
  `close_context` to end the turn, or `close_context` alone to interrupt it.
- Wyoming: the `wyoming` client against a replica's WYOMING_URI face; a cancel is a hang-up.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import RTCSessionDescription
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.tts import Synthesize

from bench.clients import PLAYOUT_TIMEOUT_S, VOICED_DBFS
from bench.record import StreamRecord
from signaling.peer import create_offer, create_peer_connection
from tests.rtc_client import Received, RtcClient

REPORT_S = 0.2  # a WebSocket player reports its position this often
BYTES_PER_MS = 48  # s16 mono at 24 kHz
REQUEST_TIMEOUT_S = 180.0
CLOSE_TIMEOUT_S = 30.0  # a cancelled stream ends within this (it stops within a window)


@dataclass
class Behaviour:
    """What the client does besides listening: cancel or vanish this long after first audio."""

    kind: str = "listen"  # listen | cancel | vanish
    after_s: float = 0.0
    via: str = ""  # how a cancel is made where a face has several ways (delete | disconnect)


@dataclass
class Attempt:
    transport: str
    text: str
    asked_backend: str | None
    behaviour: Behaviour
    rec: StreamRecord = field(default_factory=lambda: StreamRecord(time.monotonic()))
    outcome: str = "completed"  # completed | cancelled | refused | failed
    reason: str | None = None
    http_5xx: list[int] = field(default_factory=list)
    replica: str | None = None  # X-Served-By, or the Wyoming replica asked
    candidates: tuple[str, ...] = ()  # backends that may have spoken it, when not told
    acted: bool = False  # the client made its cancel or vanished
    started: bool = False  # the server took the request up (an id, a context message, audio)

    def fail(self, reason: str, outcome: str = "failed") -> Attempt:
        self.outcome, self.reason = outcome, reason
        self.rec.end(time.monotonic(), "error" if outcome == "failed" else outcome)
        return self

    def status(self, status: int, headers: Any, body: str) -> Attempt:
        """A non-200 HTTP answer: a refusal to retry, or a failure (5xx counted)."""
        self.rec.http_status = status
        if status in (429, 503) and "Retry-After" in headers:
            return self.fail(f"{status}: {body[:120]}", "refused")
        if status >= 500:
            self.http_5xx.append(status)
        return self.fail(f"{status}: {body[:200]}")


class Player:
    """A listener that starts once `start_ms` is queued (or the response is over), then plays
    in real time; running dry before the end is an underflow and it waits for `start_ms`
    again. What a WebSocket client reports as its position."""

    def __init__(self, start_ms: float) -> None:
        self.start_ms = start_ms
        self.received = self.played = 0.0
        self.playing = self.done = False
        self.underflows = 0
        self._at = time.monotonic()

    def _advance(self, now: float) -> None:
        if self.playing:
            self.played = min(self.received, self.played + 1000 * (now - self._at))
            if self.played >= self.received and not self.done:
                self.underflows += 1
                self.playing = False
        self._at = now

    def feed(self, ms: float, now: float) -> None:
        self._advance(now)
        self.received += ms
        if not self.playing and self.received - self.played >= self.start_ms:
            self.playing = True

    def finish(self, now: float) -> None:
        self._advance(now)
        self.done = self.playing = True

    def position(self, now: float) -> tuple[float, float]:
        """(played ms, queued ms) now."""
        self._advance(now)
        return self.played, self.received - self.played

    def left_ms(self, now: float) -> float:
        played, queued = self.position(now)
        return queued if self.done else float("inf")


def _abort(conn: Any) -> None:
    """Drop a connection without a word (no close frame, no FIN handshake to wait for)."""
    transport = getattr(conn, "transport", None)
    if transport is not None:
        transport.abort()


async def _after_first_audio(a: Attempt) -> None:
    while not a.rec.arrivals:  # noqa: ASYNC110 (the reader fills it)
        await asyncio.sleep(0.02)
    await asyncio.sleep(a.behaviour.after_s)


class Actor:
    """`async with Actor(a, act)`: runs `act()` once the attempt's first audio is in and its
    behaviour's delay has passed (nothing for a listener); stopped when the block ends."""

    def __init__(self, a: Attempt, act: Callable[[], Awaitable[None]]) -> None:
        self.a, self.act = a, act
        self.task: asyncio.Future[None] | None = None

    async def _run(self) -> None:
        await _after_first_audio(self.a)
        self.a.acted = True
        await self.act()

    async def __aenter__(self) -> Actor:
        if self.a.behaviour.kind != "listen":
            self.task = asyncio.ensure_future(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


# --- HTTP ----------------------------------------------------------------------------------


async def http_speech(http: aiohttp.ClientSession, lb: str, direct: dict[str, str], a: Attempt,
                      mode: str, admin: aiohttp.ClientSession | None = None) -> Attempt:
    """POST /v1/audio/speech through the balancer; `mode` pcm | sse | whole. A DELETE goes
    to the serving replica itself over `admin` (a session that keeps no connection open)."""
    body: dict[str, Any] = {"input": a.text, "response_format": "pcm", "stream": mode != "whole"}
    if mode == "sse":
        body["stream_format"] = "sse"
    if a.asked_backend:
        body["backend"] = a.asked_backend
    rec = a.rec
    try:
        async with http.post(lb + "/v1/audio/speech", json=body) as r:
            if r.status != 200:
                return a.status(r.status, r.headers, await r.text())
            rec.http_status = r.status
            rec.backend = r.headers.get("X-Backend")
            rec.degraded = r.headers.get("X-Degraded") == "true"
            a.replica = r.headers.get("X-Served-By")
            if mode == "pcm" and not rec.degraded:  # a failover after the headers is unseen
                a.candidates = tuple(x for x in (rec.backend, "fallback") if x)
            replica_url = direct.get(a.replica or "")
            rid = r.headers.get("X-Request-ID", "")

            async def act() -> None:
                if a.behaviour.kind == "vanish" or a.behaviour.via == "disconnect" \
                        or replica_url is None:
                    _abort(r.connection)
                    r.close()
                    return
                async with (admin or http).delete(f"{replica_url}/v1/audio/speech/{rid}") as d:
                    await d.read()

            async with Actor(a, act):
                if mode == "sse":
                    await _read_sse(r, a)
                else:
                    async for data in r.content.iter_any():
                        rec.add(time.monotonic(), len(data) / BYTES_PER_MS)
    except (aiohttp.ClientError, ConnectionError) as e:
        if a.acted:
            return a.fail(a.behaviour.kind, "cancelled")
        return a.fail(f"{type(e).__name__}: {e}")
    if a.acted and a.outcome == "completed":
        return a.fail(a.behaviour.kind, "cancelled")
    if a.outcome == "completed":
        rec.end(time.monotonic(), "ok")
    return a


async def _read_sse(r: aiohttp.ClientResponse, a: Attempt) -> None:
    buf = b""
    async for data in r.content.iter_any():
        buf += data
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            if not event.startswith(b"data: "):
                continue
            msg = json.loads(event[6:])
            if msg.get("type") == "speech.audio.delta":
                a.rec.add(time.monotonic(), len(base64.b64decode(msg["audio"])) / BYTES_PER_MS)
            elif msg.get("type") == "speech.audio.done":
                a.rec.degraded = a.rec.degraded or bool(msg.get("degraded"))
            elif msg.get("type") == "error":
                a.fail(f"error event: {msg.get('error')}")


# --- the native WebSocket -------------------------------------------------------------------


class Link:
    """A WebSocket a worker keeps between requests, as a player or an agent does: a reader
    task takes every message as it arrives (stamped with its arrival; it also answers the
    server's heartbeat between requests), requests read them from `inbox`."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.replica: str | None = None
        self.inbox: asyncio.Queue[tuple[float, aiohttp.WSMessage]] = asyncio.Queue()
        self._reader: asyncio.Future[None] | None = None
        self.sent_at = time.monotonic()

    @property
    def is_open(self) -> bool:
        return self.ws is not None and not self.ws.closed

    async def connect(self, a: Attempt) -> bool:
        """Open (again, after the server closed it); False (with `a` failed or refused)
        when the handshake is answered with an error status."""
        if self.is_open:
            return True
        await self.close()
        try:
            self.ws = await self.http.ws_connect(self.url, heartbeat=None)
        except aiohttp.WSServerHandshakeError as e:
            a.status(e.status, e.headers or {}, e.message)
            return False
        self.replica = self.ws._response.headers.get("X-Served-By")  # noqa: SLF001
        self.inbox = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read(self.ws))
        self.sent_at = time.monotonic()
        return True

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            msg = await ws.receive()
            await self.inbox.put((time.monotonic(), msg))
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.ERROR):
                return

    async def receive(self, timeout: float) -> tuple[float, aiohttp.WSMessage]:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    def stale(self) -> None:
        """Forget what arrived between requests (an earlier response's last events)."""
        while not self.inbox.empty():
            at, msg = self.inbox.get_nowait()
            if msg.type != aiohttp.WSMsgType.TEXT and msg.type != aiohttp.WSMsgType.BINARY:
                self.inbox.put_nowait((at, msg))  # a close is news for the next request
                return

    async def send(self, msg: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_json(msg)
        self.sent_at = time.monotonic()

    def vanish(self) -> None:
        if self.ws is not None:
            _abort(self.ws._conn)  # noqa: SLF001

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None


class WsLink(Link):
    """/v1/audio/speech/ws for one backend (the session's), reused between requests."""

    def __init__(self, http: aiohttp.ClientSession, lb: str, backend: str | None) -> None:
        super().__init__(http, lb.replace("http", "ws", 1) + "/v1/audio/speech/ws")
        self.backend = backend
        self.rate_hz = 24000
        self.done_ids: set[str] = set()

    async def open(self, a: Attempt) -> bool:
        if self.is_open:
            return True
        if not await self.connect(a):
            return False
        created = await self._event("session.created")
        self.rate_hz = int(created["session"]["sample_rate"])
        if self.backend:
            await self.send({"type": "session.update", "session": {"backend": self.backend}})
            await self._event("session.updated")
        return True

    async def _event(self, kind: str) -> dict[str, Any]:
        while True:
            _, msg = await self.receive(30)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"closed before {kind}: {msg.type} {msg.extra}")
            ev = json.loads(msg.data)
            if ev["type"] == kind:
                return dict(ev)


async def ws_speech(link: WsLink, a: Attempt, start_ms: float) -> Attempt:
    try:
        if not await link.open(a):
            return a
    except (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError) as e:
        await link.close()
        return a.fail(f"connect: {type(e).__name__}: {e}")
    a.replica = link.replica
    link.stale()
    player = Player(start_ms)
    rid: list[str | None] = [None]

    async def report() -> None:
        while True:
            played, queued = player.position(time.monotonic())
            if rid[0] is not None and link.is_open:
                await link.send({"type": "playback.report", "played_ms": round(played, 1),
                                 "buffer_ms": round(queued, 1), "response_id": rid[0]})
            await asyncio.sleep(REPORT_S)

    async def act() -> None:
        if a.behaviour.kind == "vanish":
            link.vanish()
        else:
            await link.send({"type": "response.cancel"})

    reporter = asyncio.ensure_future(report())
    try:
        a.rec = StreamRecord(time.monotonic())
        await link.send({"type": "input_text.append", "text": a.text})
        await link.send({"type": "input_text.done"})
        async with Actor(a, act):
            while True:
                at, msg = await link.receive(60)
                if msg.type == aiohttp.WSMsgType.BINARY:
                    ms = len(msg.data) / 2 / link.rate_hz * 1000
                    a.rec.add(at, ms)
                    a.started = True
                    player.feed(ms, at)
                    continue
                if msg.type != aiohttp.WSMsgType.TEXT:
                    assert link.ws is not None
                    code = link.ws.close_code
                    await link.close()
                    if a.acted:
                        return a.fail(a.behaviour.kind, "cancelled")
                    return a.fail(f"closed mid-response: {code} {msg.extra}")
                ev = json.loads(msg.data)
                their = ev.get("response_id")
                if their in link.done_ids or (rid[0] and their and their != rid[0]):
                    continue  # an earlier response's late event
                if ev["type"] == "response.created":
                    rid[0] = their
                    a.started = True
                elif ev["type"] == "error":
                    if ev.get("code") == "busy":
                        a.fail(ev.get("message", "busy"), "refused")
                    else:
                        a.fail(f"error event: {ev.get('code')}: {ev.get('message')}")
                elif ev["type"] == "response.done":
                    link.done_ids.add(their)
                    a.rec.backend, a.rec.degraded = ev.get("backend"), bool(ev.get("degraded"))
                    if ev["status"] == "cancelled" or a.acted:
                        return a.fail(a.behaviour.kind, "cancelled")
                    if ev["status"] != "completed":
                        return a if a.outcome != "completed" else a.fail(f"done: {ev['status']}")
                    player.finish(at)
                    a.rec.end(at, "ok")
                    break
        # a player plays out what it holds, reporting, before it asks for more
        deadline = time.monotonic() + player.left_ms(time.monotonic()) / 1000 + 5
        while player.left_ms(time.monotonic()) > 0 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(REPORT_S)
        return a
    except (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError) as e:
        await link.close()
        if a.acted:
            return a.fail(a.behaviour.kind, "cancelled")
        last = f"{time.monotonic() - a.rec.arrivals[-1][0]:.1f} s" if a.rec.arrivals else "-"
        return a.fail(f"{type(e).__name__}: {e} (response {rid[0]}; {a.rec.audio_ms:.0f} ms "
                      f"of audio, the last {last} ago)")
    finally:
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)


# --- WebRTC --------------------------------------------------------------------------------


async def webrtc_speech(http: aiohttp.ClientSession, lb: str, a: Attempt) -> Attempt:
    """bench.clients.MorpheusWebRtc's way (tests/rtc_client.py's aiortc client), with the
    offer's status read here (a draining replica answers 503) and the client's own faults."""
    client = RtcClient(lb, http)
    try:
        # RtcClient.connect, with the offer's answer judged here instead of asserted
        client.pc = create_peer_connection()
        client.pc.addTransceiver("audio", direction="recvonly")
        client.channel = client.pc.createDataChannel("events")
        client.channel.on("message", client._on_message)  # noqa: SLF001
        client.pc.on("track", client._on_track)  # noqa: SLF001
        offer = await create_offer(client.pc, ["127.0.0.1"])
        async with http.post(lb + "/webrtc/offer",
                             json={"sdp": offer.sdp, "type": offer.type}) as r:
            if r.status != 200:
                return a.status(r.status, r.headers, await r.text())
            a.replica = r.headers.get("X-Served-By")
            answer = await r.json()
        await client.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"],
                                                                   answer["type"]))
        opened = asyncio.Event()
        if client.channel.readyState == "open":
            opened.set()
        client.channel.on("open", opened.set)
        await asyncio.wait_for(opened.wait(), 10)
        await client.next_event("session.created")
        if a.asked_backend:
            client.send(type="session.update", session={"backend": a.asked_backend})
            await client.next_event("session.updated")
        rec = a.rec = StreamRecord(time.monotonic())
        got_ms, want_ms = [0.0], [float("inf")]
        played_out = asyncio.Event()

        def on_frame(f: Received) -> None:
            if f.at < rec.requested_at or (not rec.arrivals and f.dbfs < VOICED_DBFS):
                return
            if got_ms[0] >= want_ms[0]:
                return
            rec.add(f.at, 1000 * f.samples / 48000)
            got_ms[0] += 1000 * f.samples / 48000
            if got_ms[0] >= want_ms[0]:
                played_out.set()

        client.on_frame = on_frame
        client.send(type="input_text.append", text=a.text)
        client.send(type="input_text.done")
        if a.behaviour.kind != "listen":
            await asyncio.wait_for(_after_first_audio(a), 60)
            a.acted = True
            if a.behaviour.kind == "cancel":
                client.send(type="response.cancel")
                await client.next_event("response.done", timeout=CLOSE_TIMEOUT_S)
            return a.fail(a.behaviour.kind, "cancelled")  # a vanish: the peer just goes
        done = await client.next_event("response.done", timeout=REQUEST_TIMEOUT_S)
        rec.backend, rec.degraded = done.get("backend"), bool(done.get("degraded"))
        if done["status"] != "completed":
            errors = [e for e in client.log if e["type"] == "error"]
            if errors and errors[-1].get("code") == "busy":
                return a.fail(errors[-1].get("message", "busy"), "refused")
            return a.fail(f"done: {done['status']}: {errors[-1] if errors else ''}")
        want_ms[0] = float(done["audio_ms"])
        if got_ms[0] >= want_ms[0]:
            played_out.set()
        try:
            await asyncio.wait_for(played_out.wait(), PLAYOUT_TIMEOUT_S)
        except asyncio.TimeoutError:
            return a.fail(f"playout timed out: heard {got_ms[0]:.0f} of {want_ms[0]:.0f} ms")
        rec.end(rec.arrivals[-1][0] if rec.arrivals else time.monotonic(), "ok")
        return a
    except (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError) as e:
        return a.fail(f"{type(e).__name__}: {e}")
    finally:
        await client.close()


# --- ElevenLabs multi-context ---------------------------------------------------------------


class ElevenLink(Link):
    """One worker's multi-stream-input socket, reused turn after turn (a context each), kept
    alive between turns with `{"text": ""}` as agents do (the socket closes after 20 s
    without a message)."""

    KEEPALIVE_S = 10.0

    def __init__(self, http: aiohttp.ClientSession, lb: str) -> None:
        super().__init__(http, lb.replace("http", "ws", 1) + "/v1/text-to-speech/default/"
                         "multi-stream-input?output_format=pcm_24000")
        self.turns = 0
        self._keepalive: asyncio.Future[None] | None = None

    async def open(self, a: Attempt) -> bool:
        if self.is_open:
            return True
        if not await self.connect(a):
            return False
        if self._keepalive is None:
            self._keepalive = asyncio.ensure_future(self._keep())
        return True

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.is_open and time.monotonic() - self.sent_at > self.KEEPALIVE_S:
                try:
                    await self.send({"text": ""})
                except (aiohttp.ClientError, ConnectionError):
                    pass  # the next turn finds it closed and opens another

    async def close(self) -> None:
        await super().close()

    async def shut(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            await asyncio.gather(self._keepalive, return_exceptions=True)
        await self.close()


def pieces(text: str, rng: random.Random) -> list[str]:
    """Text as an LLM writes it: a few words at a time."""
    words, out = text.split(" "), []
    while words:
        n = rng.randint(1, 4)
        out.append(" ".join(words[:n]) + " ")
        words = words[n:]
    return out


async def elevenlabs_turn(link: ElevenLink, a: Attempt, rng: random.Random) -> Attempt:
    """One turn on its own context: pieces, then flush + close_context; an interruption is
    close_context alone, and what still arrives for the context is thrown away."""
    try:
        if not await link.open(a):
            return a
    except (aiohttp.ClientError, ConnectionError) as e:
        await link.close()
        return a.fail(f"connect: {type(e).__name__}: {e}")
    a.replica = link.replica
    link.stale()
    link.turns += 1
    cid = f"turn-{link.turns}"
    rec = a.rec = StreamRecord(time.monotonic())
    written = asyncio.Event()

    async def write() -> None:
        await link.send({"text": " ", "context_id": cid})
        for piece in pieces(a.text, rng):
            await link.send({"text": piece, "context_id": cid})
            await asyncio.sleep(rng.uniform(0.01, 0.04))
        written.set()
        if a.behaviour.kind == "listen":  # the end of a turn: flush, then close the context
            await link.send({"context_id": cid, "flush": True})
            await link.send({"context_id": cid, "close_context": True})

    async def act() -> None:
        if a.behaviour.kind == "vanish":
            link.vanish()
            return
        await written.wait()  # a barge-in: the context is dropped, the socket stays
        await link.send({"context_id": cid, "close_context": True})

    writer = asyncio.ensure_future(write())
    try:
        async with Actor(a, act):
            while True:
                at, msg = await link.receive(60)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    assert link.ws is not None
                    code = link.ws.close_code
                    await link.close()
                    if a.acted:
                        return a.fail(a.behaviour.kind, "cancelled")
                    return a.fail(f"closed mid-turn: {code} {msg.extra}")
                data = json.loads(msg.data)
                if data.get("contextId") not in (None, cid):
                    continue  # an earlier, interrupted turn's last messages
                a.started = True
                if data.get("error"):
                    if data["error"] == "too_many_concurrent_requests":
                        return a.fail(data.get("message", "busy"), "refused")
                    return a.fail(f"error: {data.get('error')}: {data.get('message')}")
                if data.get("audio") and not a.acted:
                    rec.add(at, len(base64.b64decode(data["audio"])) / BYTES_PER_MS)
                if data.get("isFinal"):
                    if a.acted:
                        return a.fail(a.behaviour.kind, "cancelled")
                    rec.end(at, "ok")
                    return a
    except (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError) as e:
        await link.close()
        if a.acted:
            return a.fail(a.behaviour.kind, "cancelled")
        # what the client had done, for telling a stalled server from a client that never
        # ended its turn
        wrote = ("the turn was ended (flush, close_context)" if writer.done()
                 and not writer.cancelled() and writer.exception() is None
                 else f"the writer failed: {writer.exception()!r}" if writer.done()
                 and not writer.cancelled() else "the text was still being written")
        last = f"{time.monotonic() - rec.arrivals[-1][0]:.1f} s" if rec.arrivals else "-"
        return a.fail(f"{type(e).__name__}: {e} (context {cid}; {wrote}; "
                      f"{rec.audio_ms:.0f} ms of audio, the last {last} ago)")
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)


# --- Wyoming -------------------------------------------------------------------------------


async def wyoming_speech(port: int, a: Attempt) -> Attempt:
    """synthesize -> audio-start, audio-chunk*, audio-stop on a fresh connection, as Home
    Assistant asks; the client's cancel is a hang-up."""
    rec = a.rec = StreamRecord(time.monotonic())
    client = AsyncTcpClient("127.0.0.1", port)

    async def act() -> None:
        _abort(client._writer)  # noqa: SLF001

    try:
        await client.connect()
    except ConnectionRefusedError as e:
        return a.fail(f"{type(e).__name__}", "refused")  # the replica is down: ask the other
    except OSError as e:
        return a.fail(f"connect: {type(e).__name__}: {e}")
    try:
        await client.write_event(Synthesize(text=a.text).event())
        bytes_per_ms = 2 * 24000 / 1000
        async with Actor(a, act):
            while True:
                event = await asyncio.wait_for(client.read_event(), 60)
                if event is None:
                    if a.acted:
                        return a.fail(a.behaviour.kind, "cancelled")
                    return a.fail("the server closed the connection mid-reply")
                if AudioStart.is_type(event.type):
                    start = AudioStart.from_event(event)
                    bytes_per_ms = start.rate * start.width * start.channels / 1000
                elif AudioChunk.is_type(event.type):
                    rec.add(time.monotonic(),
                            len(AudioChunk.from_event(event).audio) / bytes_per_ms)
                elif AudioStop.is_type(event.type):
                    rec.end(time.monotonic(), "ok")
                    return a
                elif Error.is_type(event.type):
                    err = Error.from_event(event)
                    if err.code == "busy":
                        return a.fail(err.text, "refused")
                    return a.fail(f"error: {err.code}: {err.text}")
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
        if a.acted:
            return a.fail(a.behaviour.kind, "cancelled")
        return a.fail(f"{type(e).__name__}: {e}")
    finally:
        await client.disconnect()


__all__ = ["Attempt", "Behaviour", "ElevenLink", "Link", "Player", "WsLink", "elevenlabs_turn",
           "http_speech", "webrtc_speech", "wyoming_speech", "ws_speech"]
