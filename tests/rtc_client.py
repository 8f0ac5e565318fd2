"""A real aiortc client for Morpheus' WebRTC face (tests and the benchmark share it).

`RtcClient` offers like a browser does (host candidates on 127.0.0.1), opens the `events`
data channel, records every received audio frame with its arrival time and level, and can
send a scripted microphone track (`ScriptedMic`) for barge-in.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from signaling.peer import create_offer, create_peer_connection, shorten_jitter_buffer

RATE = 48000
FRAME = 960
SILENT_DBFS = -45.0


class ScriptedMic(MediaStreamTrack):
    """A microphone: silence, then whatever `say()` queued, paced at real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue = bytearray()
        self._t0: float | None = None
        self._pts = -FRAME
        self.speech_sent_at: float | None = None  # when the first frame of `say()` went out
        self._mark = False

    def say(self, pcm48: bytes) -> None:
        self._queue += pcm48
        self.speech_sent_at = None
        self._mark = True

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        self._pts += FRAME
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        deadline = self._t0 + self._pts / RATE
        if deadline > now:
            await asyncio.sleep(deadline - now)
        chunk = bytes(self._queue[: FRAME * 2])
        del self._queue[: FRAME * 2]
        if chunk and self._mark:
            self._mark = False
            self.speech_sent_at = time.monotonic()
        chunk += bytes(FRAME * 2 - len(chunk))
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME)
        frame.planes[0].update(chunk)
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        return frame


@dataclass
class Received:
    at: float  # arrival (monotonic)
    pts: int
    samples: int
    dbfs: float


def frame_dbfs(frame: AudioFrame) -> float:
    x = frame.to_ndarray().astype(np.float64).reshape(-1) / 32768.0
    rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
    return 20 * np.log10(max(rms, 1e-9))


@dataclass
class RtcClient:
    """An aiortc peer that talks to Morpheus as a browser would."""

    url: str
    http: aiohttp.ClientSession
    pc: Any = None
    mic: ScriptedMic = field(default_factory=ScriptedMic)
    frames: list[Received] = field(default_factory=list)
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    log: list[dict[str, Any]] = field(default_factory=list)
    pc_id: str = ""
    offer_sent_at: float = 0.0
    first_packet_at: float | None = None
    on_frame: Callable[[Received], None] | None = None
    # Frames aiortc's jitter buffer holds before handing one on: None keeps its 4 (80 ms, a
    # browser-like buffer); 1 hears what the server sent a frame after it arrives.
    playout_prefetch_frames: int | None = None

    async def connect(self, *, with_mic: bool = True) -> None:
        self.pc = create_peer_connection()
        if with_mic:
            self.pc.addTrack(self.mic)
        else:
            self.pc.addTransceiver("audio", direction="recvonly")
        self.channel = self.pc.createDataChannel("events")
        self.channel.on("message", self._on_message)
        self.pc.on("track", self._on_track)
        self.offer_sent_at = time.monotonic()
        offer = await create_offer(self.pc, ["127.0.0.1"])
        async with self.http.post(self.url + "/webrtc/offer",
                                  json={"sdp": offer.sdp, "type": offer.type}) as r:
            assert r.status == 200, await r.text()
            answer = await r.json()
        self.pc_id = answer["pc_id"]
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        self._opened = asyncio.Event()
        if self.channel.readyState == "open":
            self._opened.set()
        self.channel.on("open", self._opened.set)
        await asyncio.wait_for(self._opened.wait(), 5)

    def _on_message(self, message: str) -> None:
        ev = json.loads(message)
        ev["_at"] = time.monotonic()
        self.log.append(ev)
        self.events.put_nowait(ev)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if self.playout_prefetch_frames is not None:
            for transceiver in self.pc.getTransceivers():
                if transceiver.receiver.track is track:
                    shorten_jitter_buffer(transceiver.receiver, self.playout_prefetch_frames)
        self._reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, AudioFrame) and frame.pts is not None
                now = time.monotonic()
                if self.first_packet_at is None:
                    self.first_packet_at = now
                r = Received(now, frame.pts, frame.samples, frame_dbfs(frame))
                self.frames.append(r)
                if self.on_frame is not None:
                    self.on_frame(r)
        except MediaStreamError:
            pass

    def send(self, **msg: Any) -> None:
        self.channel.send(json.dumps(msg))

    async def next_event(self, *types: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next event of one of `types` (others are skipped, still kept in `log`)."""
        deadline = time.monotonic() + timeout
        while True:
            ev = await asyncio.wait_for(self.events.get(), max(0.01, deadline - time.monotonic()))
            if not types or ev["type"] in types:
                return ev

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
