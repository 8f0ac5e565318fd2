"""A deterministic engine with knobs (latency, speed, stalls, failures) for tests and demos."""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from adapters.base import (
    PIPELINE_RATE_HZ,
    AudioChunk,
    Capabilities,
    Health,
    TTSAdapter,
    TTSInput,
    Voice,
    WordTiming,
)
from adapters.errors import EngineError
from dsp.pcm import float_to_pcm16


@dataclass
class SyntheticKnobs:
    """Behaviour of the fake engine. Times are in the event loop's clock (virtual in tests).

    Each knob's default is "off" (no delay, no stall, no failure), so a test or the bench sets
    only the knob it studies; the server sets the SYNTHETIC_* ones from its settings."""

    ttfb_ms: float = 0.0  # delay before the first chunk of each segment
    rtf: float = 0.0  # x real time; 0 = as fast as possible
    chunk_ms: float = 200.0  # audio per chunk below sentence level
    ms_per_char: float = 60.0  # audio length per character of text (~speech)
    stall_after: int | None = None  # chunks (over the adapter's life) after which it hangs
    fail_times: int = 0  # the first N segments raise EngineError
    rate_hz: int = PIPELINE_RATE_HZ
    native_speed: bool = True  # False: ignore TTSInput.speed and let the pipeline stretch
    concurrency: int | None = None  # engine slots shared by all streams (None = unbounded)


class SyntheticAdapter(TTSAdapter):
    """Tones whose pitch is a hash of the text: different text, audibly different audio.

    Audio length is proportional to the text (ms_per_char / speed). With `rtf > 0` each
    chunk costs `chunk_ms / rtf` of loop time, so a 1.5x backend is just `rtf=1.5`. Every
    character takes the same time, so the engine knows exactly when each word is spoken.
    """

    name = "synthetic"
    capabilities = Capabilities(
        native_rate_hz=PIPELINE_RATE_HZ, streams_sub_sentence=True, chunk_unit="segment",
        languages=("en",), native_speed=True, word_timings=True,
    )

    def __init__(self, knobs: SyntheticKnobs | None = None) -> None:
        self.knobs = knobs or SyntheticKnobs()
        self.concurrency = self.knobs.concurrency
        if not self.knobs.native_speed:
            self.capabilities = replace(self.capabilities, native_speed=False)
        if self.knobs.rate_hz != self.capabilities.native_rate_hz:
            self.capabilities = replace(self.capabilities, native_rate_hz=self.knobs.rate_hz)
        self.chunks_made = 0
        self.segments_started = 0
        self.texts: list[str] = []  # every segment it was asked to speak, in order

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SyntheticAdapter:
        return cls(SyntheticKnobs(
            ttfb_ms=float(options["synthetic_ttfb_ms"]),
            rtf=float(options["synthetic_rtf"]),
            stall_after=options["synthetic_stall_after"],
            fail_times=int(options["synthetic_fail_times"]),
            native_speed=bool(options["synthetic_native_speed"]),
        ))

    async def health(self) -> Health:
        return Health(ready=True, backend=self.name, loader="builtin")

    def voices(self) -> list[Voice]:
        return [
            Voice(id="sine", name="Sine", description="pure tones", backend=self.name),
            Voice(id="buzz", name="Buzz", description="harmonic buzz", backend=self.name),
        ]

    async def synth_stream(self, req: TTSInput) -> AsyncIterator[AudioChunk]:
        k = self.knobs
        self.segments_started += 1
        self.texts.append(req.text)
        if self.segments_started <= k.fail_times:
            raise EngineError(f"synthetic failure {self.segments_started}", backend=self.name)
        speed = req.speed if k.native_speed else 1.0
        total_ms = max(k.chunk_ms / 2, len(req.text) * k.ms_per_char / max(speed, 0.05))
        chunk_ms = k.chunk_ms
        if req.target_chunk:  # the orchestrator sizes waveform chunks in ms
            chunk_ms = float(req.target_chunk)
        freq = 120.0 + int(hashlib.sha1(req.text.encode()).hexdigest()[:4], 16) % 400
        if k.ttfb_ms:
            await asyncio.sleep(k.ttfb_ms / 1000)
        words = word_timings(req.text, total_ms)
        done_ms = 0.0
        while done_ms < total_ms:
            if k.stall_after is not None and self.chunks_made >= k.stall_after:
                await asyncio.Event().wait()  # hang until cancelled
            ms = min(chunk_ms, total_ms - done_ms)
            if k.rtf > 0:
                await asyncio.sleep(ms / k.rtf / 1000)
            pcm = tone(freq, done_ms, ms, k.rate_hz, harmonic=req.voice == "buzz")
            here = tuple(w for w in words if done_ms <= w.start_ms < done_ms + ms)
            done_ms += ms
            self.chunks_made += 1
            yield AudioChunk(pcm, k.rate_hz, is_final=done_ms >= total_ms, words=here)


def word_timings(text: str, total_ms: float) -> list[WordTiming]:
    """Each character takes total_ms / len(text): a word spans its own characters."""
    per_char = total_ms / max(1, len(text))
    return [WordTiming(m.group(), m.start() * per_char, m.end() * per_char)
            for m in re.finditer(r"\S+", text)]


def tone(freq_hz: float, start_ms: float, dur_ms: float, rate_hz: int, harmonic: bool) -> bytes:
    """A phase-continuous tone segment with a gentle syllable-like envelope."""
    n0 = int(round(start_ms * rate_hz / 1000))
    n = int(round((start_ms + dur_ms) * rate_hz / 1000)) - n0
    t = (np.arange(n) + n0) / rate_hz
    x = np.sin(2 * math.pi * freq_hz * t)
    if harmonic:
        x = 0.6 * x + 0.3 * np.sin(4 * math.pi * freq_hz * t) + 0.1 * np.sin(6 * math.pi * freq_hz * t)
    envelope = 0.55 + 0.45 * np.sin(2 * math.pi * 3.0 * t)  # ~3 "syllables" per second
    return float_to_pcm16(0.3 * x * envelope)
