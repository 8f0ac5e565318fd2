"""Speech onset detection on 20 ms frames (webrtcvad + an N-of-M rule), and downmix helpers."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import webrtcvad

FRAME_MS = 20
VAD_RATES_HZ = (8000, 16000, 32000, 48000)  # the only rates webrtcvad accepts
SAMPLE_WIDTH_BYTES = 2


def frame_bytes(sample_rate_hz: int, frame_ms: int = FRAME_MS) -> int:
    """Bytes in one mono s16 frame of `frame_ms` at `sample_rate_hz`."""
    return sample_rate_hz * frame_ms // 1000 * SAMPLE_WIDTH_BYTES


def downmix_interleaved(samples: np.ndarray, channels: int) -> np.ndarray:
    """Interleaved s16 samples (any shape, C order) of `channels` channels -> mono int16."""
    flat = np.ascontiguousarray(samples, dtype=np.int16).reshape(-1)
    if channels <= 1:
        return flat
    usable = flat.size - flat.size % channels
    frames = flat[:usable].reshape(-1, channels).astype(np.int32)
    return (frames.sum(axis=1) // channels).astype(np.int16)


def downmix_planar(planes: np.ndarray) -> np.ndarray:
    """Planar s16 samples shaped (channels, samples) -> mono int16."""
    planes = np.asarray(planes, dtype=np.int16)
    if planes.ndim == 1 or planes.shape[0] == 1:
        return planes.reshape(-1)
    return (planes.astype(np.int32).sum(axis=0) // planes.shape[0]).astype(np.int16)


def rms_dbfs(pcm: np.ndarray) -> float:
    """Level of int16 samples in dB relative to full scale (-inf for digital silence)."""
    if pcm.size == 0:
        return -math.inf
    mean_sq = float(np.mean(np.square(pcm.astype(np.float64))))
    if mean_sq <= 0.0:
        return -math.inf
    return 10.0 * math.log10(mean_sq / (32768.0 * 32768.0))


class SpeechOnsetDetector:
    """Says when a caller starts speaking: N voiced frames out of the last M, 20 ms each.

    `process()` takes mono s16le PCM of any length (it re-frames to 20 ms internally) and
    returns True exactly once per utterance: in the call whose audio completes the onset. After
    `release_ms` of unbroken non-speech the detector re-arms for the next utterance. Frames
    quieter than `floor_dbfs` count as non-speech whatever webrtcvad says, so codec noise on a
    muted microphone cannot start a barge-in.
    """

    def __init__(
        self,
        sample_rate_hz: int = 48000,
        aggressiveness: int = 2,
        onset_ms: int = 60,
        window_ms: int | None = None,
        release_ms: int = 300,
        floor_dbfs: float = -55.0,
    ) -> None:
        if sample_rate_hz not in VAD_RATES_HZ:
            raise ValueError(f"webrtcvad needs one of {VAD_RATES_HZ} Hz, got {sample_rate_hz}")
        if not 0 <= aggressiveness <= 3:
            raise ValueError("aggressiveness must be 0..3")
        self.sample_rate_hz = sample_rate_hz
        self.onset_frames = max(1, math.ceil(onset_ms / FRAME_MS))
        # Default M = N + 1: one unvoiced frame inside a syllable does not restart the count.
        window = window_ms if window_ms is not None else (self.onset_frames + 1) * FRAME_MS
        self.window_frames = max(self.onset_frames, math.ceil(window / FRAME_MS))
        self.release_frames = max(1, math.ceil(release_ms / FRAME_MS))
        self.floor_dbfs = floor_dbfs
        self._vad = webrtcvad.Vad(aggressiveness)
        self._frame_bytes = frame_bytes(sample_rate_hz)
        self._pending = bytearray()
        self._window: deque[bool] = deque(maxlen=self.window_frames)
        self._silent_run = 0
        self.speaking = False
        self.frames_processed = 0
        self.onsets = 0
        self.speech_start_ms: float | None = None  # stream position of the last onset's speech

    def reset(self) -> None:
        """Forget everything heard so far (the stream position keeps counting)."""
        self._pending.clear()
        self._window.clear()
        self._silent_run = 0
        self.speaking = False

    def is_speech(self, frame_pcm: bytes) -> bool:
        """webrtcvad's verdict on one 20 ms frame, behind the level floor."""
        level = rms_dbfs(np.frombuffer(frame_pcm, dtype=np.int16))
        if level < self.floor_dbfs:
            return False
        return bool(self._vad.is_speech(frame_pcm, self.sample_rate_hz))

    def process(self, frame_pcm: bytes) -> bool:
        """Feed mono s16le PCM; True if a speech onset completed within this audio."""
        self._pending += frame_pcm
        onset = False
        size = self._frame_bytes
        while len(self._pending) >= size:
            frame = bytes(self._pending[:size])
            del self._pending[:size]
            onset = self._step(self.is_speech(frame)) or onset
        return onset

    def _step(self, voiced: bool) -> bool:
        self.frames_processed += 1
        self._window.append(voiced)
        if self.speaking:
            self._silent_run = 0 if voiced else self._silent_run + 1
            if self._silent_run >= self.release_frames:
                self.speaking = False
                self._window.clear()
            return False
        if voiced and sum(self._window) >= self.onset_frames:
            self.speaking = True
            self._silent_run = 0
            self.onsets += 1
            # Speech began at the first voiced frame still in the window.
            first = list(self._window).index(True)
            start_frame = self.frames_processed - len(self._window) + first
            self.speech_start_ms = float(start_frame * FRAME_MS)
            return True
        return False


__all__ = [
    "FRAME_MS",
    "VAD_RATES_HZ",
    "SpeechOnsetDetector",
    "downmix_interleaved",
    "downmix_planar",
    "frame_bytes",
    "rms_dbfs",
]
