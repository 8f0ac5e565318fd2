"""The listener as the server models it when nobody reports playback (HTTP)."""

from __future__ import annotations

import asyncio


class WallClockObserver:
    """Buffer model when nobody reports playback (HTTP): a player that starts once `start_ms`
    is queued (PLAYBACK_BUFFER_MS, as players and the benchmark's client do), plays in real
    time, and when it runs dry stalls until `start_ms` is queued again. (Audio sent minus wall
    time would go far below zero for a stream slower than real time, and make it look more
    urgent than a stream still waiting for its first audio; a player assumed to start at the
    first byte would look starved while a real one is still filling its buffer.)"""

    playback_known = False

    def __init__(self, start_ms: float = 0.0) -> None:
        self.start_ms = start_ms
        self.sent_ms = 0.0
        self.played_ms = 0.0
        self._playing = False
        self._last: float | None = None
        self._waiting_since: float | None = None  # holds audio, not playing: since when

    def _advance(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._last is not None and self._playing:
            self.played_ms = min(self.sent_ms, self.played_ms + 1000 * (now - self._last))
            self._playing = self.played_ms < self.sent_ms  # ran dry: it buffers again
        self._last = now

    def audio_sent(self, ms: float) -> None:
        self._advance()
        self.sent_ms += ms
        if self.sent_ms - self.played_ms >= self.start_ms:
            self._playing = True
            self._waiting_since = None
        elif self._waiting_since is None:
            self._waiting_since = self._last

    def stalled_ms(self) -> float:
        """Waiting to (re)start with less than `start_ms` queued: the buffer figure stands
        still then, and would leave the stream behind every other at the engine's gate."""
        if self._waiting_since is None or self._last is None:
            return 0.0
        self._advance()
        if self._playing:
            return 0.0
        return 1000 * (asyncio.get_running_loop().time() - self._waiting_since)

    def buffer_ms(self) -> float:
        if self._last is None:
            return 0.0
        self._advance()
        return self.sent_ms - self.played_ms


__all__ = ["WallClockObserver"]
