"""The outbound WebRTC audio track: 20 ms frames at 48 kHz, paced to the wall clock, silence when idle."""

from __future__ import annotations

import asyncio
import fractions
import logging
import math
import time
from collections.abc import Awaitable, Callable

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, CodecContext, Packet
from av.audio.codeccontext import AudioCodecContext

from dsp.resample import StreamResampler

log = logging.getLogger("morpheus.track")

SAMPLE_RATE_HZ = 48_000
FRAME_SAMPLES = 960  # 20 ms: aiortc's Opus packetisation is fixed at 20 ms
FRAME_MS = 1000.0 * FRAME_SAMPLES / SAMPLE_RATE_HZ
FRAME_BYTES = FRAME_SAMPLES * 2
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE_HZ)
_SILENCE = bytes(FRAME_BYTES)

# (return time on the monotonic clock, pts, carried queued audio, carried a fade-out)
FrameHook = Callable[[float, int, bool, bool], None]


class _OpusPackets:
    """Opus-encodes 20 ms mono frames in the loop, so aiortc ships packets as they are.

    Handing aiortc AudioFrames costs, per frame, a pure-Python audio-level loop over the
    samples (~0.1 ms), an executor hop and a stereo 96 kbps encode. Encoding mono here is
    cheaper on every count (~75 us, in the loop), and steady silence needs no encoding at all:
    libopus turns digital silence into the same tiny packet every time, so that packet is
    reused once two silent frames have flushed the encoder's lookahead and overlap.
    """

    FLUSH_FRAMES = 2

    def __init__(self, bitrate_bps: int) -> None:
        self._bitrate_bps = bitrate_bps
        self._codec = self._new_codec()
        self._silence = self._silence_packet()
        self._silent_run = 0  # silent frames encoded since the last audio

    def _new_codec(self) -> AudioCodecContext:
        codec = CodecContext.create("libopus", "w")
        codec.bit_rate = self._bitrate_bps
        codec.format = "s16"
        codec.layout = "mono"
        codec.sample_rate = SAMPLE_RATE_HZ
        codec.time_base = TIME_BASE
        codec.options = {"application": "voip"}
        return codec

    def _silence_packet(self) -> bytes:
        """What a fresh encoder makes of steady digital silence (a throwaway encoder)."""
        codec = self._new_codec()
        data = b""
        for i in range(3):
            packets = codec.encode(_frame(_SILENCE, i * FRAME_SAMPLES))
            data = bytes(packets[0]) if packets else data
        return data

    def encode(self, pcm: bytes, voiced: bool, pts: int) -> Packet:
        if voiced:
            self._silent_run = 0
        elif self._silent_run >= self.FLUSH_FRAMES and self._silence:
            return self._packet(self._silence, pts)
        else:
            self._silent_run += 1
        packets = self._codec.encode(_frame(pcm, pts))
        return self._packet(bytes(packets[0]) if packets else self._silence, pts)

    @staticmethod
    def _packet(data: bytes, pts: int) -> Packet:
        packet = Packet(data)
        packet.pts = pts
        packet.time_base = TIME_BASE
        return packet


def _frame(pcm: bytes, pts: int) -> AudioFrame:
    frame = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
    frame.planes[0].update(pcm)
    frame.sample_rate = SAMPLE_RATE_HZ
    frame.pts = pts
    frame.time_base = TIME_BASE
    return frame


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _fade_out(pcm: bytes) -> bytes:
    """Raised-cosine ramp from full level to zero across `pcm` (no click at the cut)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    if x.size == 0:
        return b""
    ramp = 0.5 * (1.0 + np.cos(np.linspace(0.0, math.pi, x.size, dtype=np.float32)))
    return np.rint(x * ramp).astype("<i2").tobytes()


class PacedAudioTrack(MediaStreamTrack):
    """Audio the server speaks, released one 20 ms frame per tick of an absolute clock.

    aiortc's sender does no pacing: it ships whatever `recv()` returns as soon as it returns.
    So `recv()` sleeps until `t0 + pts / 48000` on the monotonic clock (never chained sleeps,
    which drift), and re-anchors t0 when it wakes more than `reanchor_ms` late (the loop was
    blocked) instead of bursting to catch up. It never returns None and never raises except
    `MediaStreamError` once stopped, because any other exception silently kills the sender.

    A reply's first audio does not wait for the next tick: while the track idles on silence,
    audio written wakes the sleeping `recv()`, which sends it at once and moves the schedule
    earlier by what it saved (0-20 ms, 10 on average: `early_starts`, and negative
    `reanchored_ms`). Receivers that release frames by count (aiortc's jitter buffer) hear it
    that much sooner; the frame's pts still follows the last one by exactly 960.

    By default `recv()` returns Opus packets it encoded itself (see `_OpusPackets`);
    `encode=False` returns the raw 48 kHz s16 mono AudioFrames instead, for aiortc to encode.

    Feed it 24 kHz s16le mono with `write()` (resampled to 48 kHz inside, queue bounded by
    `max_queue_ms`: `write()` waits for room). `clear()` fades out what is playing within the
    next frame and drops the rest. The track also serves as the stream's BufferObserver: the
    queue depth is the listener's buffer, known exactly.
    """

    kind = "audio"
    playback_known = True  # BufferObserver: the overflow pause may throttle this stream

    def __init__(
        self,
        *,
        input_rate_hz: int = 24_000,
        max_queue_ms: float = 1000.0,
        reanchor_ms: float = 20.0,
        encode: bool = True,
        bitrate_bps: int = 64_000,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__()
        self.input_rate_hz = input_rate_hz
        self._max_queue_bytes = max(FRAME_BYTES, int(max_queue_ms * SAMPLE_RATE_HZ / 1000) * 2)
        self._reanchor_s = reanchor_ms / 1000.0
        self._clock = clock
        self._sleep = sleep
        self._opus = _OpusPackets(bitrate_bps) if encode else None
        self._resampler = StreamResampler(input_rate_hz, SAMPLE_RATE_HZ)
        self._queue = bytearray()  # 48 kHz s16le mono, oldest first
        self._fade: bytes | None = None  # the faded-out head, sent in the next frame
        self._generation = 0  # bumped by clear(): writes started before it are dropped
        self._room = asyncio.Event()
        self._t0: float | None = None
        self._pts = -FRAME_SAMPLES
        self._idle = True  # the last frame carried no audio (silence or nothing sent yet)
        self._wake: asyncio.Future[None] | None = None  # resolved by audio written while idle
        self.on_frame: FrameHook | None = None
        # counters, in 48 kHz samples / frames
        self.frames_sent = 0
        self.audio_frames_sent = 0  # frames that carried queued audio
        self.samples_enqueued = 0
        self.samples_played = 0  # queued samples that went out in frames (faded ones included)
        self.samples_dropped = 0
        self.reanchors = 0
        self.reanchored_ms = 0.0  # how far the schedule moved at re-anchors (the only drift)
        self.early_starts = 0  # replies whose first frame went out before its tick
        self.clears = 0

    # --- feeding ----------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._generation

    async def write(self, pcm: bytes) -> None:
        """Queue s16le mono PCM at `input_rate_hz`; waits while the queue is full.

        A `clear()` or `stop()` while waiting drops whatever is not yet queued.
        """
        generation = self._generation
        await self._enqueue(self._resampler.process(pcm), generation)

    async def finish(self) -> None:
        """End of a response: push out what the resampler still holds."""
        generation = self._generation
        await self._enqueue(self._resampler.flush(), generation)

    async def _enqueue(self, data: bytes, generation: int) -> None:
        view = memoryview(data)
        while view.nbytes:
            if self.readyState != "live" or generation != self._generation:
                return
            room = self._max_queue_bytes - len(self._queue)
            if room < 2:
                self._room.clear()
                await self._room.wait()
                continue
            take = min(room - room % 2, view.nbytes)
            self._queue += view[:take]
            self.samples_enqueued += take // 2
            view = view[take:]
            if self._wake is not None and not self._wake.done():
                self._wake.set_result(None)  # a reply starts: recv() sends it now

    def clear(self, fade_ms: float = 8.0) -> float:
        """Stop what is playing: the next frame fades the current audio out over `fade_ms`
        (5-10 ms), then silence. Drops the rest of the queue and any write in progress.
        Returns the ms of queued audio dropped (never heard)."""
        fade_samples = max(1, int(SAMPLE_RATE_HZ * fade_ms / 1000))
        head = min(len(self._queue), fade_samples * 2)
        if head and self._fade is None:
            self._fade = _fade_out(bytes(self._queue[:head]))
        else:
            head = 0
        dropped = (len(self._queue) - head) // 2
        self._queue.clear()
        self.samples_dropped += dropped
        self._resampler = StreamResampler(self.input_rate_hz, SAMPLE_RATE_HZ)
        self._generation += 1
        self.clears += 1
        self._room.set()
        return 1000.0 * dropped / SAMPLE_RATE_HZ

    # --- observing --------------------------------------------------------------------------

    def buffer_ms(self) -> float:
        """Audio queued and not yet sent, in ms (exact: this track paces the listener)."""
        pending = len(self._queue) + (len(self._fade) if self._fade else 0)
        return 1000.0 * (pending // 2) / SAMPLE_RATE_HZ

    def audio_sent(self, ms: float) -> None:
        """BufferObserver: nothing to do, `write()` already accounts for the audio."""

    @property
    def played_ms(self) -> float:
        return 1000.0 * self.samples_played / SAMPLE_RATE_HZ

    @property
    def enqueued_ms(self) -> float:
        return 1000.0 * self.samples_enqueued / SAMPLE_RATE_HZ

    def queued_ms(self) -> float:
        """Audio queued to be played at full level (a pending fade-out not included)."""
        return 1000.0 * (len(self._queue) // 2) / SAMPLE_RATE_HZ

    @property
    def speaking(self) -> bool:
        """Audio is queued: the listener is hearing, or about to hear, the server."""
        return bool(self._queue)

    # --- the sender's side ------------------------------------------------------------------

    async def recv(self) -> AudioFrame | Packet:
        if self.readyState != "live":
            raise MediaStreamError
        now = self._clock()
        self._pts += FRAME_SAMPLES
        if self._t0 is None:
            self._t0 = now
        deadline = self._t0 + self._pts / SAMPLE_RATE_HZ
        if deadline > now:
            if not (self._idle and self._queue):
                await self._nap(deadline - now)
                now = self._clock()
            if self._idle and self._queue and deadline - now > 0.0005:
                # Audio arrived while idling: start the reply now, the schedule with it.
                self._t0 -= deadline - now
                self.early_starts += 1
                self.reanchored_ms -= 1000.0 * (deadline - now)
        elif now - deadline > self._reanchor_s:
            # Woke late (loop blocked, underrun): resume from now, never burst to catch up.
            self._t0 = now - self._pts / SAMPLE_RATE_HZ
            self.reanchors += 1
            self.reanchored_ms += 1000.0 * (now - deadline)
        if self.readyState != "live":
            raise MediaStreamError
        try:
            pcm, voiced, faded = self._next_pcm()
        except Exception:  # a raise here would end the sender for good: send silence
            log.exception("building an audio frame failed; sending silence")
            pcm, voiced, faded = _SILENCE, False, False
        self._idle = not voiced and not faded
        out: AudioFrame | Packet
        if self._opus is not None:
            out = self._opus.encode(pcm, voiced, self._pts)
        else:
            out = _frame(pcm, self._pts)
        self.frames_sent += 1
        if self.on_frame is not None:
            self.on_frame(self._clock(), self._pts, voiced, faded)
        return out

    async def _nap(self, delay_s: float) -> None:
        """Sleep until the frame's tick; while idle, audio written ends the nap early."""
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()
        self._wake = woken if self._idle else None
        try:
            if self._sleep is None:  # the loop's timer, as asyncio.sleep: no task per frame
                timer = loop.call_later(delay_s, _resolve, woken)
                try:
                    await woken
                finally:
                    timer.cancel()
            else:  # an injected clock's sleep (tests)
                sleeper = asyncio.ensure_future(self._sleep(delay_s))
                try:
                    await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sleeper.cancel()
        finally:
            self._wake = None

    def _next_pcm(self) -> tuple[bytes, bool, bool]:
        out = bytearray()
        faded = self._fade is not None
        if self._fade is not None:
            out += self._fade
            self.samples_played += len(self._fade) // 2
            self._fade = None
        take = min(FRAME_BYTES - len(out), len(self._queue))
        if take:
            out += self._queue[:take]
            del self._queue[:take]
            self.samples_played += take // 2
            self._room.set()
        voiced = bool(out)
        if voiced:
            self.audio_frames_sent += 1
        if len(out) < FRAME_BYTES:
            out += _SILENCE[: FRAME_BYTES - len(out)]
        return bytes(out), voiced, faded

    def stop(self) -> None:
        super().stop()
        self._room.set()  # release writers waiting for room


__all__ = ["FRAME_SAMPLES", "SAMPLE_RATE_HZ", "TIME_BASE", "FrameHook", "PacedAudioTrack"]
