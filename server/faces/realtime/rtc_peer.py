"""One WebRTC caller: its peer connection (aiortc), the paced Opus track out, the mic in (VAD),
barge-in and the `events` channel's session. Imported on the first offer (server/faces/realtime/
webrtc.py): aiortc and PyAV cost ~40 MB that a server nobody calls over WebRTC never spends.

Each offer gets a `WebRTCPeer`: an RTCPeerConnection with no ICE servers, one PacedAudioTrack
(which is also the orchestrator's BufferObserver), a MicListener feeding the VAD, and a
RealtimeSession (server/faces/realtime/session.py) speaking the event vocabulary over the data
channel labelled `events`. Speech onset in the mic while Morpheus speaks is barge-in: the track
fades out within its next frame, synthesis stops, and the client is told.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc import sdp as sdp_parser
from aiortc.mediastreams import MediaStreamTrack

from server.app_keys import METRICS, SETTINGS
from server.faces.realtime.session import RealtimeSession
from signaling import protocol as P
from signaling.mic import MicListener
from signaling.peer import (
    IdleWatchdog,
    answer_offer,
    create_peer_connection,
    shorten_jitter_buffer,
)
from signaling.track import SAMPLE_RATE_HZ, PacedAudioTrack

log = logging.getLogger("morpheus.webrtc")

EVENTS_LABEL = "events"
INBOX_MAX = 256  # data channel messages waiting to be handled, per peer
CLIENT_REPORT_TTL_S = 2.0  # a client's jitter-buffer figure older than this is ignored
TRACK_QUEUE_MS = 1000.0
# After the track's last audio frame is sent, the caller's jitter buffer still plays it: a
# drain keeps the peer this long past an empty queue (a client report adds its own figure).
PLAYOUT_TAIL_S = 0.3
CHANNEL_FLUSH_S = 0.5  # at shutdown, the last event gets this long to leave before the close


@dataclass
class BargeIn:
    """Timings of one barge-in on the monotonic clock (for the bench and the logs)."""

    vad_at: float
    cleared_at: float
    response_id: str | None
    played_ms: float
    first_silent_frame_at: float | None = None


class TrackSink:
    """The session's audio sink for WebRTC: the paced track, plus the client's jitter buffer."""

    playback_known = True

    def __init__(self, track: PacedAudioTrack, clock: Any = time.monotonic) -> None:
        self.track = track
        self._clock = clock
        self._start_samples = 0
        self._client_buffer_ms = 0.0
        self._client_report_at: float | None = None

    def audio_sent(self, ms: float) -> None:
        """Nothing: the track counts what it queues."""

    def stalled_ms(self) -> float:
        """Playback is known here (reports, or the paced track): nothing is modelled."""
        return 0.0

    def buffer_ms(self) -> float:
        """The track's queue (exact) plus the jitter-buffer delay the client last reported."""
        extra = 0.0
        if (
            self._client_report_at is not None
            and self._clock() - self._client_report_at < CLIENT_REPORT_TTL_S
        ):
            extra = self._client_buffer_ms
        return self.track.buffer_ms() + extra

    def report(self, report: P.PlaybackReport) -> None:
        if report.buffer_ms is not None:
            self._client_buffer_ms = report.buffer_ms
            self._client_report_at = self._clock()

    def begin_response(self, response_id: str, sample_rate_hz: int) -> None:
        self._start_samples = self.track.samples_enqueued

    async def write(self, pcm: bytes) -> None:
        await self.track.write(pcm)

    async def finish(self) -> None:
        await self.track.finish()

    def played_ms(self) -> float:
        played = self.track.samples_played - self._start_samples
        return max(0.0, 1000.0 * played / SAMPLE_RATE_HZ)

    def unplayed_ms(self) -> float:
        return self.track.queued_ms()  # a fade already under way needs no second clear

    def clear(self) -> float:
        played = self.played_ms()
        self.track.clear()
        return played


class Registry(Protocol):
    """Where a peer is listed while it lives (webrtc.PeerRegistry)."""

    def discard(self, peer: WebRTCPeer) -> None: ...


class WebRTCPeer:
    """One caller: peer connection, outbound track, mic listener, event session."""

    def __init__(self, app: web.Application, registry: Registry) -> None:
        settings = app[SETTINGS].current
        self.app = app
        self.registry = registry
        self.id = f"pc_{uuid.uuid4().hex[:16]}"
        self.settings = settings
        self.pc: RTCPeerConnection = create_peer_connection()
        self.track = PacedAudioTrack(max_queue_ms=max(TRACK_QUEUE_MS, settings.buffer_max_ms * 2))
        self.track.on_frame = self._on_frame
        self.sink = TrackSink(self.track)
        self.channel: RTCDataChannel | None = None
        self.mic: MicListener | None = None
        self.session = RealtimeSession(
            app, transport="webrtc", send=self._send, sink=self.sink,
            session=P.SessionConfig(sample_rate_hz=SAMPLE_RATE_HZ, barge_in=True),
        )
        self.barge_ins: deque[BargeIn] = deque(maxlen=256)
        self._inbox: asyncio.Queue[str] = asyncio.Queue(maxsize=INBOX_MAX)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self.closed = asyncio.Event()
        self.watchdog = IdleWatchdog(
            settings.webrtc_idle_timeout_s, self._idle_close,
            busy=lambda: self.session.speaking or self.track.speaking,
        )
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_connection_state)
        self._quiet_since: float | None = None  # when the track last ran out of audio

    # --- setup --------------------------------------------------------------------------

    async def answer(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        answer = await answer_offer(
            self.pc, offer, self.settings.host_addresses, local_tracks=[self.track]
        )
        self.watchdog.start()
        self._spawn(self._handle_inbox(), "inbox")
        return answer

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=f"{self.id}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio" or self.mic is not None:
            self._spawn(_drain(track), "drain")  # never leave a track unread
            return
        for transceiver in self.pc.getTransceivers():
            if transceiver.receiver.track is track:
                shorten_jitter_buffer(transceiver.receiver)  # 60 ms sooner to the VAD
        self.mic = MicListener(
            track, on_speech_onset=self._on_speech_onset,
            aggressiveness=self.settings.vad_aggressiveness,
            onset_ms=self.settings.vad_onset_ms,
        )
        self._spawn(self.mic.run(), "mic")

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != EVENTS_LABEL:
            log.info("ignoring data channel %r", channel.label)
            return
        self.channel = channel
        channel.on("message", self._on_message)
        channel.on("close", lambda: self._spawn(self.close(), "close"))
        self._spawn(self.session.start(), "session-created")

    def _on_message(self, message: str | bytes) -> None:
        self.watchdog.touch()
        try:
            self._inbox.put_nowait(message if isinstance(message, str) else message.decode())
        except asyncio.QueueFull:
            self._send_now(P.error(P.RATE_LIMITED, "too many messages; this one was dropped"))
        except UnicodeDecodeError:
            self._send_now(P.error(P.INVALID_JSON, "binary messages must be UTF-8 JSON"))

    async def _handle_inbox(self) -> None:
        while True:  # one at a time, in order (aiortc would run async handlers concurrently)
            raw = await self._inbox.get()
            await self.session.handle_text(raw)

    async def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        log.debug("%s connection %s", self.id, state)
        if state in ("failed", "closed"):
            await self.close()

    # --- events out ---------------------------------------------------------------------

    def _send_now(self, event: dict[str, Any]) -> None:
        channel = self.channel
        if channel is None or channel.readyState != "open":
            return  # no channel yet (or gone): events have nowhere to go
        channel.send(json.dumps(event, separators=(",", ":")))

    async def _send(self, event: dict[str, Any]) -> None:
        self._send_now(event)

    # --- barge-in -----------------------------------------------------------------------

    def _on_speech_onset(self, audio_start_ms: float) -> None:
        """The VAD heard the caller start speaking (runs on the loop, synchronously)."""
        vad_at = time.monotonic()
        self.watchdog.touch()
        events = [P.speech_started(audio_start_ms)]
        if self.session.config.barge_in and (self.session.speaking or self.track.speaking):
            resp = self.session.current or self.session.last
            backend = resp.stream.backend if resp and resp.stream else None
            # stop_current clears the track first: the next frame is the fade-out.
            stopped = self.session.stop_current()
            if stopped:  # a reply was running or still playing: the caller cut it off
                self.session.orch.note_barge_in(backend or self.settings.tts_backend)
            played = next(
                (e["played_ms"] for e in stopped if e["type"] == "output_audio_buffer.cleared"),
                0.0,
            )
            self.barge_ins.append(BargeIn(vad_at, time.monotonic(), resp.id if resp else None,
                                          played))
            events += stopped
            log.info("barge-in", extra={"request_id": resp.id if resp else None,
                                        "played_ms": played})
        for ev in events:
            self._send_now(ev)

    def _on_frame(self, at: float, pts: int, voiced: bool, faded: bool) -> None:
        if self.barge_ins and self.barge_ins[-1].first_silent_frame_at is None:
            b = self.barge_ins[-1]
            if at >= b.cleared_at:
                b.first_silent_frame_at = at

    # --- the drain (server/deliveries.py) ------------------------------------------------

    transport = "webrtc"

    def owes(self) -> bool:
        """A response is running, or its audio is queued on the track or still in the
        caller's jitter buffer."""
        if self._closing:
            return False
        if self.session.owes() or self.track.speaking:
            self._quiet_since = None
            return True
        now = time.monotonic()
        if self._quiet_since is None:
            self._quiet_since = now
        tail_s = PLAYOUT_TAIL_S + max(0.0, self.sink.buffer_ms()) / 1000.0
        return now - self._quiet_since < tail_s

    async def close_for_shutdown(self, reason: str) -> None:
        await self.session.shutdown(reason)
        deadline = time.monotonic() + CHANNEL_FLUSH_S
        channel = self.channel
        # aiortc has no event for an emptied send buffer: it is polled
        while (channel is not None and channel.readyState == "open"  # noqa: ASYNC110
               and channel.bufferedAmount > 0 and time.monotonic() < deadline):
            await asyncio.sleep(0.02)
        await self.close()

    # --- teardown -----------------------------------------------------------------------

    async def _idle_close(self) -> None:
        self.app[METRICS].timeouts.labels("webrtc_idle").inc()
        await self.close()

    async def close(self) -> None:
        if self._closing:
            await self.closed.wait()
            return
        self._closing = True
        try:
            self.registry.discard(self)
            await self.watchdog.stop()
            await self.session.aclose()
            current = asyncio.current_task()
            others = [t for t in self._tasks if t is not current]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            self.track.stop()
            await self.pc.close()
        finally:
            self.closed.set()
            log.info("peer closed", extra={"request_id": self.id})


async def _drain(track: MediaStreamTrack) -> None:
    from aiortc.mediastreams import MediaStreamError

    try:
        while True:
            await track.recv()
    except MediaStreamError:
        pass


def offer_media_kinds(sdp: str) -> list[str]:
    """The kinds of the offer's m-lines; ValueError when aiortc cannot parse it."""
    try:
        parsed = sdp_parser.SessionDescription.parse(sdp)
    except Exception as e:  # aiortc's parser raises assorted errors (even AssertionError)
        raise ValueError(repr(e)) from None
    return [m.kind for m in parsed.media]


def session_description(sdp: str) -> RTCSessionDescription:
    return RTCSessionDescription(sdp=sdp, type="offer")


__all__ = ["BargeIn", "TrackSink", "WebRTCPeer", "offer_media_kinds", "session_description"]
