"""How far a stream's audio is ahead of its listener, and what follows from it: when the
engine pauses (far ahead, and the listener's playback is known), when the listener ran dry (an
underflow), how urgent the stream is at the engine's gate, and chunk sizes (rate control)."""

from __future__ import annotations

import asyncio

from server.core.events import BufferObserver
from server.core.rate import RateController


class Pacing:
    """The listener's buffer as the sink knows it (`observer`) plus what is made and queued
    but not yet taken by the sink; the rate controller sized by it."""

    def __init__(self, observer: BufferObserver, rate: RateController) -> None:
        self.observer = observer
        self.rate = rate
        self.chunk_audio_ms = 0.0  # EWMA of the audio per engine chunk
        self._queued_ms = 0.0
        self._dry = False

    def ahead_ms(self) -> float:
        """Audio ahead of the listener's playback, counting what is made but not yet taken."""
        return self.observer.buffer_ms() + self._queued_ms

    def urgency_ms(self) -> float:
        """For the engine's gate: the audio ahead, less how long a modelled listener has been
        stuck waiting for enough to start (lower goes first)."""
        return self.ahead_ms() - self.observer.stalled_ms()

    def queued(self, ms: float) -> None:
        """`ms` of audio were made and queued for the sink."""
        self._queued_ms += ms

    def taken(self, ms: float) -> None:
        """The sink took `ms` of queued audio."""
        self._queued_ms = max(0.0, self._queued_ms - ms)
        self.observer.audio_sent(ms)

    def observe_chunk(self, units: int, cost_ms: float, audio_ms: float) -> None:
        """An engine chunk of `audio_ms` cost `cost_ms` of wall time for `units` of input."""
        self.chunk_audio_ms = (audio_ms if not self.chunk_audio_ms
                               else 0.7 * self.chunk_audio_ms + 0.3 * audio_ms)
        self.rate.observe(units, cost_ms, audio_ms)

    async def room(self) -> None:
        """Wait while the listener is far enough ahead that the next chunk can wait."""
        lead = self.rate.expected_cost_ms(self.chunk_audio_ms)
        while self.rate.should_pause(self.ahead_ms(), self.observer.playback_known, lead,
                                     self.chunk_audio_ms):
            wait_ms = self.rate.resume_wait_ms(self.ahead_ms()) - lead
            await asyncio.sleep(min(max(wait_ms, 5), 200) / 1000)

    def ran_dry(self) -> bool:
        """True once per underflow: the listener's buffer just ran out (after first audio)."""
        if self.observer.buffer_ms() <= 0:
            if not self._dry:
                self._dry = True
                self.rate.starved()
                return True
            return False
        self._dry = False
        return False


__all__ = ["Pacing"]
