"""The caller's microphone: always drained, downmixed, and watched by the VAD for speech onset."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, AudioResampler

from dsp.vad import VAD_RATES_HZ, SpeechOnsetDetector, downmix_interleaved, downmix_planar

log = logging.getLogger("morpheus.mic")

# Called with the stream position (ms since the first mic frame) where the speech began.
OnsetCallback = Callable[[float], None]


class MicListener:
    """Reads every frame of an inbound audio track until it ends.

    aiortc's remote track queues decoded frames without bound, so the track must be drained
    even when nobody cares about its content (pitfall: unconsumed tracks grow memory and
    deliver stale audio). Each frame is downmixed to mono and fed to a SpeechOnsetDetector;
    `on_speech_onset` runs synchronously on the event loop at each onset, so the caller can
    cancel playback before the next frame is read.
    """

    def __init__(
        self,
        track: MediaStreamTrack,
        *,
        on_speech_onset: OnsetCallback,
        aggressiveness: int = 2,
        onset_ms: int = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.track = track
        self.on_speech_onset = on_speech_onset
        self._aggressiveness = aggressiveness
        self._onset_ms = onset_ms
        self._clock = clock
        self.detector: SpeechOnsetDetector | None = None
        self._resampler: AudioResampler | None = None
        self.frames_received = 0
        self.last_onset_at: float | None = None  # monotonic time of the last VAD decision

    async def run(self) -> None:
        """Consume the track until it ends (or this task is cancelled)."""
        try:
            while True:
                frame = await self.track.recv()
                self.frames_received += 1
                if isinstance(frame, AudioFrame):
                    self._feed(frame)
        except MediaStreamError:
            log.debug("mic track ended after %d frames", self.frames_received)

    def _feed(self, frame: AudioFrame) -> None:
        pcm, rate = self._mono_s16(frame)
        if self.detector is None:
            self.detector = SpeechOnsetDetector(
                sample_rate_hz=rate, aggressiveness=self._aggressiveness, onset_ms=self._onset_ms
            )
        if self.detector.process(pcm):
            self.last_onset_at = self._clock()
            start_ms = self.detector.speech_start_ms or 0.0
            try:
                self.on_speech_onset(start_ms)
            except Exception:  # a failing handler must not stop the draining
                log.exception("speech onset handler failed")

    def _mono_s16(self, frame: AudioFrame) -> tuple[bytes, int]:
        """Mono s16le at a rate webrtcvad accepts (48 kHz for Opus, no resampling)."""
        rate = frame.sample_rate
        name = frame.format.name
        channels = len(frame.layout.channels)
        if rate in VAD_RATES_HZ and name == "s16":
            mono = downmix_interleaved(frame.to_ndarray(), channels)
            return mono.astype("<i2").tobytes(), rate
        if rate in VAD_RATES_HZ and name == "s16p":
            return downmix_planar(frame.to_ndarray()).astype("<i2").tobytes(), rate
        # Anything else (float formats, odd rates): let libswresample do it.
        if self._resampler is None:
            self._resampler = AudioResampler(format="s16", layout="mono", rate=16000)
        out = b"".join(
            np.ascontiguousarray(f.to_ndarray()).astype("<i2").tobytes()
            for f in self._resampler.resample(frame)
        )
        return out, 16000


__all__ = ["MicListener", "OnsetCallback"]
