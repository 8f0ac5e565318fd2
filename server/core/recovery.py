"""Speaking a segment whatever fails: a smaller retry on a stall, another upstream of the same
backend when one is lost, the fallback backend otherwise; never a word said twice or skipped.

When the engine fails part-way through a segment, the rest is spoken from the first word not
yet heard: the audio delivered, at the stream's observed ms per character, says where to resume
(to within about a word).
"""

from __future__ import annotations

import logging
from typing import Protocol

from adapters.errors import BackendTimeout, TTSError, UpstreamLost

log = logging.getLogger("morpheus.orchestrator")

UPSTREAM_RETRIES = 3  # same-backend continuations per segment after UpstreamLost


class PartialFailure(Exception):
    """The engine failed after `delivered_ms` of the segment's audio went out."""

    def __init__(self, error: TTSError, delivered_ms: float) -> None:
        super().__init__(str(error))
        self.error = error
        self.delivered_ms = delivered_ms


class Speaker(Protocol):
    """What recovery needs of a stream (server/core/stream.py)."""

    @property
    def ms_per_char(self) -> float:
        """The stream's speech pace so far (places a mid-segment resume)."""

    def log_extra(self) -> dict[str, str]:
        """The stream's request id and backend, for log records."""

    async def attempt(self, text: str, *, smaller: bool) -> float:
        """Speak `text` on the stream's current engine; the ms delivered. Raises
        PartialFailure after some audio went out, a TTSError before any."""

    async def another_upstream(self, error: TTSError) -> None:
        """Continue on another upstream of the same backend (not a failover)."""

    async def fail_over(self, error: TTSError) -> None:
        """Switch the stream to the fallback backend, or raise `error` when there is none."""


async def speak_segment(speaker: Speaker, text: str) -> float:
    """Speak `text` through every recovery; returns the ms of audio delivered for it."""
    retried = False
    spoken = ""  # the part of `text` already delivered before a mid-segment failure
    delivered = 0.0
    upstream_retries = 0
    while True:
        rest = text[len(spoken):].strip()
        try:
            return delivered + await speaker.attempt(rest, smaller=retried)
        except PartialFailure as pf:
            spoken += resume_point(rest, pf.delivered_ms, speaker.ms_per_char)
            delivered += pf.delivered_ms
            if isinstance(pf.error, UpstreamLost) and upstream_retries < UPSTREAM_RETRIES:
                upstream_retries += 1  # another upstream of this backend speaks the rest
                await speaker.another_upstream(pf.error)
            else:
                await speaker.fail_over(pf.error)
                retried = True
            if not text[len(spoken):].strip():
                return delivered
        except TTSError as e:
            if isinstance(e, UpstreamLost) and upstream_retries < UPSTREAM_RETRIES:
                upstream_retries += 1
                await speaker.another_upstream(e)
                continue
            if isinstance(e, BackendTimeout) and not retried:
                retried = True
                log.warning("stall, retrying smaller", extra=speaker.log_extra())
                continue
            await speaker.fail_over(e)
            retried = True  # the fallback gets no second stall retry


def resume_point(text: str, delivered_ms: float, ms_per_char: float) -> str:
    """The prefix of `text` (whole words) that `delivered_ms` of audio has already spoken."""
    chars = delivered_ms / max(ms_per_char, 1e-6)
    best = ""
    for i, ch in enumerate(text):
        if ch == " " and i <= chars + 0.5:
            best = text[: i + 1]
    if chars >= len(text) - 0.5:
        return text
    return best


__all__ = ["PartialFailure", "Speaker", "UPSTREAM_RETRIES", "resume_point", "speak_segment"]
