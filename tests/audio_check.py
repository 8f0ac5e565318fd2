"""Decode audio bytes with real decoders (PyAV/FFmpeg, Python's wave) for assertions."""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass

import av
import numpy as np


@dataclass
class Decoded:
    duration_s: float
    sample_rate_hz: int
    rms_dbfs: float
    codec: str


def decode(data: bytes, fmt: str | None = None) -> Decoded:
    """Decode a whole file with FFmpeg (through PyAV); raise if it is not decodable."""
    kwargs = {"format": fmt} if fmt else {}
    with av.open(io.BytesIO(data), **kwargs) as container:
        stream = container.streams.audio[0]
        chunks = [f.to_ndarray().astype(np.float64).reshape(-1) for f in container.decode(stream)]
        rate = stream.codec_context.sample_rate
        codec = stream.codec_context.name
    x = np.concatenate(chunks) if chunks else np.zeros(0)
    if x.size and np.abs(x).max() > 1.5:  # integer samples
        x = x / 32768.0
    channels = max(1, stream.codec_context.channels if hasattr(stream.codec_context, "channels") else 1)
    rms = float(np.sqrt(np.mean(x**2))) if x.size else 0.0
    return Decoded(x.size / channels / rate, rate, 20 * np.log10(max(rms, 1e-9)), codec)


def pcm_stats(pcm: bytes, rate_hz: int = 24000) -> Decoded:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    rms = float(np.sqrt(np.mean(x**2))) if x.size else 0.0
    return Decoded(x.size / rate_hz, rate_hz, 20 * np.log10(max(rms, 1e-9)), "pcm_s16le")


def read_wave(data: bytes) -> tuple[int, int, bytes]:
    """(rate, declared frames, frames actually present) with Python's stdlib reader."""
    with wave.open(io.BytesIO(data)) as w:
        rate = w.getframerate()
        declared = w.getnframes()
        frames = w.readframes(declared)
    return rate, declared, frames
