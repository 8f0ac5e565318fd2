"""A stream's events as the content of ElevenLabs messages: encoded audio, and the characters
aligned since the previous message.

Every streamed ElevenLabs response (`/stream`, `/stream/with-timestamps`, both WebSockets) is a
sequence of such frames. Word marks come before the audio that speaks them, so a frame's
characters are never later than its audio by more than the words in flight. A codec that
holds audio back (mp3) yields nothing until it has bytes: the characters wait for them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from server.core.events import BYTES_PER_MS, AudioOut, Words
from server.core.stream import Stream
from server.faces.elevenlabs.alignment import CharAligner, CharTime
from server.faces.elevenlabs.formats import OutputEncoder


@dataclass
class Frame:
    """Encoded audio (maybe empty in the last frame) and the characters that go with it."""

    audio: bytes
    chars: list[CharTime] = field(default_factory=list)
    normalized: list[CharTime] = field(default_factory=list)
    audio_end_ms: float = 0.0  # of the response's audio, after this frame
    last: bool = False


async def frames(stream: Stream, encoder: OutputEncoder,
                 aligner: CharAligner) -> AsyncGenerator[Frame, None]:
    """The frames of `stream`, the last one flagged. Raises what iterating the stream raises
    (TTSError, BadRequest); the caller closes the stream."""
    chars: list[CharTime] = []
    normalized: list[CharTime] = []
    audio_ms = 0.0
    async for ev in stream:
        if isinstance(ev, Words):
            c, n = aligner.words(ev.words)
            chars += c
            normalized += n
        elif isinstance(ev, AudioOut):
            audio_ms += len(ev.pcm) / BYTES_PER_MS
            data = encoder.encode(ev.pcm)
            if data:
                yield Frame(data, chars, normalized, audio_ms)
                chars, normalized = [], []
    # The input after its last word (trailing spaces, a closing quote) ends with the audio.
    chars += aligner.rest(audio_ms)
    yield Frame(encoder.flush(), chars, normalized, audio_ms, last=True)


__all__ = ["Frame", "frames"]
