"""Vocabulary of a running stream: what the orchestrator yields and what it observes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from adapters.base import PIPELINE_RATE_HZ, SAMPLE_WIDTH_BYTES

BYTES_PER_MS = PIPELINE_RATE_HZ * SAMPLE_WIDTH_BYTES / 1000  # of AudioOut.pcm


@dataclass(frozen=True)
class AudioOut:
    """Audio for the sink: s16le mono PCM at the pipeline rate (24 kHz)."""

    pcm: bytes
    offset_ms: float  # where this audio starts within the response


@dataclass(frozen=True)
class WordMark:
    """A word and when the listener hears it, in ms of the response's audio (stream time).

    Marks a stream yields are the client's own words: `text` is what the client typed
    ("$1,234", "**Sure!**" less its markup), `spoken` what the engine said for it ("one
    thousand two hundred thirty-four dollars"), `source` its span in the stream's input."""

    text: str
    start_ms: float
    end_ms: float
    exact: bool  # from the engine; False = estimated from the segment's length
    spoken: str = ""  # the engine's words for it (empty: the same as `text`)
    source: tuple[int, int] | None = None  # [start, end) in the stream's input text


@dataclass(frozen=True)
class Words:
    """Timings of words, yielded before the audio that speaks them."""

    words: tuple[WordMark, ...]


@dataclass(frozen=True)
class SegmentDone:
    """All audio of one text segment has been yielded."""

    text: str
    audio_ms: float
    backend: str


@dataclass(frozen=True)
class Degraded:
    """The stream switched backend mid-way; the rest is spoken by `to_backend`."""

    from_backend: str
    to_backend: str
    reason: str


StreamEvent = AudioOut | Words | SegmentDone | Degraded


class BufferObserver(Protocol):
    """How much audio the listener has buffered ahead of playback, however the sink knows it.

    HTTP models it, WebSocket clients report it, the WebRTC track knows it exactly.
    `playback_known` says whether the overflow pause may throttle this stream (never HTTP).
    """

    playback_known: bool

    def audio_sent(self, ms: float) -> None:
        """The sink accepted `ms` more audio."""

    def buffer_ms(self) -> float:
        """Audio ahead of the listener's playback position now, in ms."""

    def stalled_ms(self) -> float:
        """How long a modelled listener has been waiting, holding audio it will not play yet
        (a player filling its buffer before it starts again); 0 for listeners whose playback is
        known. The engine's gate ages such a stream by it, so it cannot wait forever."""
