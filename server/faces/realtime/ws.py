"""WebSocket speech (GET /v1/audio/speech/ws): binary PCM frames with a bounded lead, JSON events.

The session logic is `RealtimeSession` (server/realtime.py); this module is the WebSocket sink
and route.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from adapters.base import PIPELINE_RATE_HZ
from dsp.resample import StreamResampler
from server.app_keys import METRICS, SETTINGS
from server.deliveries import DELIVERIES
from server.errors import json_error
from server.faces.realtime.session import WS_FRAME_MS, WS_MIN_FRAME_MS, RealtimeSession
from server.faces.sockets import WS_SOCKETS
from server.faces.writes import closer, send_within
from signaling import protocol as P

log = logging.getLogger("morpheus.realtime")



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
        send: Callable[[Awaitable[None]], Awaitable[None]] | None = None,
    ) -> None:
        self._ws = ws
        self._lock = lock
        self._deliver = send or (lambda aw: aw)  # wraps each send (the write timeout)
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
        self._played_report: tuple[float, float] | None = None  # (played ms, when reported)
        self.frame_sizes_ms: list[float] = []

    # --- the listener model -------------------------------------------------------------

    def lead_ms(self) -> float:
        elapsed_ms = 1000.0 * (self._clock() - self._lead_at)
        return max(0.0, self._lead_ms - elapsed_ms)

    def _set_lead(self, ms: float) -> None:
        self._lead_ms = max(0.0, ms)
        self._lead_at = self._clock()
        self._wake.set()

    def stalled_ms(self) -> float:
        """Playback is known here (reports, or the paced track): nothing is modelled."""
        return 0.0

    def buffer_ms(self) -> float:
        return self.lead_ms() + self._unsent_ms

    def audio_sent(self, ms: float) -> None:
        """BufferObserver: counted when frames actually go out, not when yielded."""

    def played_ms(self) -> float:
        """Of the current response: the client's own count when it reports one (advanced in
        real time since, up to what was sent), else what was sent less the modelled lead."""
        if self._played_report is not None:
            played, at = self._played_report
            ahead = played + 1000.0 * (self._clock() - at)
            return max(0.0, min(self.sent_response_ms, ahead))
        return max(0.0, self.sent_response_ms - self.lead_ms())

    def unplayed_ms(self) -> float:
        return self.lead_ms()

    def report(self, report: P.PlaybackReport) -> None:
        played = report.played_ms
        if played is not None and played > self.sent_response_ms + WS_MIN_FRAME_MS:
            # Counted from the connection's start, not this response's.
            played -= self.sent_total_ms - self.sent_response_ms
        if played is not None and played >= 0:
            self._played_report = (played, self._clock())
        if report.buffer_ms is not None:
            self._set_lead(report.buffer_ms)  # the queue depth paces best
        elif played is not None:
            self._set_lead(self.sent_response_ms - played)

    # --- audio --------------------------------------------------------------------------

    def _bytes_for(self, ms: float) -> int:
        return int(self._rate_hz * ms / 1000) * 2

    def begin_response(self, response_id: str, sample_rate_hz: int) -> None:
        self._rate_hz = sample_rate_hz
        self._resampler = StreamResampler(PIPELINE_RATE_HZ, sample_rate_hz)
        self._pending = b""
        self.sent_response_ms = 0.0
        self._played_report = None

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
                    await self._deliver(self._ws.send_bytes(f))
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
        self._played_report = None
        return played


class WsDelivery:
    """A speech socket as the drain sees it: it owes audio while a response runs or its
    audio is unplayed by the client's reports; at shutdown it is told why and closed (1001)."""

    transport = "ws"

    def __init__(self, ws: web.WebSocketResponse, session: RealtimeSession) -> None:
        self.ws = ws
        self.session = session

    def owes(self) -> bool:
        return not self.ws.closed and self.session.owes()

    async def close_for_shutdown(self, reason: str) -> None:
        if self.ws.closed:
            return
        await self.session.shutdown(reason)
        await self.ws.close(code=WSCloseCode.GOING_AWAY, message=reason.encode())


# --- the route ----------------------------------------------------------------------------


async def speech_ws(request: web.Request) -> web.StreamResponse:
    """GET /v1/audio/speech/ws: JSON events both ways, PCM s16le mono binary frames out."""
    settings = request.app[SETTINGS].current
    metrics = request.app[METRICS]
    sockets = request.app[WS_SOCKETS]
    if len(sockets) >= settings.ws_max_connections:
        metrics.refused.labels("ws_connections").inc()
        return json_error(503, f"too many WebSocket connections (WS_MAX_CONNECTIONS="
                          f"{settings.ws_max_connections}); retry later", type_="unavailable",
                          headers={"Retry-After": "5"})
    # Frames up to 4x the protocol's limit are read, so an oversized message gets the
    # protocol's `error` event and the connection stays open; only larger ones close it.
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4 * P.MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    sockets.add(ws)
    lock = asyncio.Lock()
    close = closer(request)

    def deliver(aw: Awaitable[None]) -> Awaitable[None]:
        return send_within(aw, settings.write_timeout_s, metrics, close)

    async def send(event: dict[str, Any]) -> None:
        if ws.closed:
            return
        async with lock:
            try:
                await deliver(ws.send_str(P.dumps(event)))
            except ConnectionError:
                pass  # the receive loop sees the close and ends the session

    sink = WsAudioSink(ws, lock, max_lead_ms=settings.ws_max_lead_ms, send=deliver)
    session = RealtimeSession(
        request.app, transport="ws", send=send, sink=sink,
        # backend None: each response uses the active backend (POST /config applies at once)
        session=P.SessionConfig(barge_in=False),
    )
    delivery = WsDelivery(ws, session)
    request.app[DELIVERIES].add(delivery)
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
        sockets.discard(ws)
        request.app[DELIVERIES].discard(delivery)
        await session.aclose()
        await ws.close()
    return ws


__all__ = ["WsAudioSink", "WsDelivery", "speech_ws"]
