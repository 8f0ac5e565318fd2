"""Adaptive chunk sizing and the INIT/WARMUP/FILL/STEADY/UNDERFLOW/RECOVER machine; pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class RateState(str, Enum):
    INIT = "INIT"
    WARMUP = "WARMUP"  # waiting for the first chunk
    FILL = "FILL"  # growing the chunk while the buffer fills to the target
    STEADY = "STEADY"  # buffer within [min, max]
    UNDERFLOW = "UNDERFLOW"  # buffer fell below min: halve, go low-latency
    RECOVER = "RECOVER"  # refilling after an underflow


@dataclass(frozen=True)
class RateConfig:
    """Sizes are in the backend's unit: tokens (token engines) or characters (segment engines)."""

    target_ms: float = 300.0
    min_ms: float = 200.0
    max_ms: float = 500.0
    first_size: int = 8
    min_size: int = 8
    steady_size: int = 32  # growth stops here (size = min(steady, size * 1.5))
    max_size: int = 64
    lock: int | None = None  # /config can pin the size
    low_latency: bool = False
    ewma_alpha: float = 0.3
    cap_by_buffer: bool = True  # one request's audio arrives all at once (not sub-streamed)


@dataclass
class RateController:
    """Decides the next chunk size from buffer depth and the observed cost of audio.

    `observe()` feeds each chunk's wall cost and audio length; the EWMA of cost per ms of
    audio (so one slow chunk does not swing it) caps the size so that making the next chunk
    never takes longer than the audio already buffered.
    """

    cfg: RateConfig
    state: RateState = RateState.INIT
    size: float = 0.0
    cost_per_audio_ms: float | None = None  # EWMA: wall ms spent per ms of audio made
    audio_ms_per_unit: float | None = None  # EWMA: ms of audio per token/char
    underflows: int = 0
    paused: bool = False
    history: list[RateState] = field(default_factory=list)

    def __post_init__(self) -> None:
        first = self.cfg.min_size if self.cfg.low_latency else self.cfg.first_size
        self.size = float(self.cfg.lock or first)
        self._enter(RateState.WARMUP)

    def _enter(self, state: RateState) -> None:
        if state is not self.state:
            self.state = state
            self.history.append(state)

    @property
    def chunk_size(self) -> int:
        return int(round(self.size))

    def observe(self, units: int, cost_ms: float, audio_ms: float) -> None:
        """One chunk was made: `units` asked for, `cost_ms` of wall time, `audio_ms` of audio."""
        if audio_ms <= 0:
            return
        a = self.cfg.ewma_alpha
        c = cost_ms / audio_ms
        self.cost_per_audio_ms = c if self.cost_per_audio_ms is None else (1 - a) * self.cost_per_audio_ms + a * c
        if units > 0:
            u = audio_ms / units
            self.audio_ms_per_unit = u if self.audio_ms_per_unit is None else (1 - a) * self.audio_ms_per_unit + a * u

    def next_size(self, buffer_ms: float, *, started: bool) -> int:
        """The size of the next request, updating the state from the buffer depth."""
        cfg = self.cfg
        if cfg.lock:
            self._update_state(buffer_ms, started)
            return cfg.lock
        self._update_state(buffer_ms, started)
        if not started:  # the first request is first_size (min_size when low latency)
            return self.chunk_size
        if self.state is RateState.UNDERFLOW:
            self.size = max(cfg.min_size, self.size / 2)
        else:  # ramp toward the steady size; the overflow pause trims it back slightly
            self.size = min(cfg.steady_size, self.size * 1.5)
        # Never ask for more audio than the buffer can cover while it is being made.
        if cfg.cap_by_buffer and self.cost_per_audio_ms and self.audio_ms_per_unit and started:
            cost_per_unit = self.cost_per_audio_ms * self.audio_ms_per_unit
            affordable = max(buffer_ms, cfg.min_ms) / max(cost_per_unit, 1e-6)
            self.size = min(self.size, max(cfg.min_size, affordable))
        self.size = min(max(self.size, cfg.min_size), cfg.max_size)
        return self.chunk_size

    def _update_state(self, buffer_ms: float, started: bool) -> None:
        cfg = self.cfg
        if not started:
            self._enter(RateState.WARMUP)
            return
        if self.state is RateState.WARMUP:
            self._enter(RateState.FILL)
        if self.state in (RateState.FILL, RateState.RECOVER):
            if buffer_ms >= cfg.target_ms:
                self._enter(RateState.STEADY)
        elif self.state is RateState.UNDERFLOW:
            self._enter(RateState.RECOVER)
        elif self.state is RateState.STEADY and buffer_ms < cfg.min_ms:
            self._enter(RateState.UNDERFLOW)

    def starved(self) -> None:
        """The listener ran out of audio (buffer hit zero mid-stream)."""
        self.underflows += 1
        self._enter(RateState.UNDERFLOW)

    def expected_cost_ms(self, audio_ms: float) -> float:
        """Wall time the next `audio_ms` of audio should take, from the EWMA."""
        return (self.cost_per_audio_ms or 0.0) * audio_ms

    def should_pause(self, buffer_ms: float, playback_known: bool, lead_ms: float = 0.0,
                     next_audio_ms: float = 0.0) -> bool:
        """Overflow pause (only where playback is known): hold requests while the next chunk
        would land above max, until the buffer is back at the target; then shrink slightly.

        `lead_ms` is what the next chunk is expected to cost and `next_audio_ms` how much audio
        it brings: resuming `lead_ms` early makes it land when the buffer is at the target.
        """
        if not playback_known:
            return False
        landing = buffer_ms - lead_ms
        if not self.paused and landing + next_audio_ms > self.cfg.max_ms:
            self.paused = True
        elif self.paused and landing <= self.cfg.target_ms:
            self.paused = False
            if not self.cfg.lock:  # shrink slightly, not below half the steady size
                floor = max(self.cfg.first_size, self.cfg.min_size, self.cfg.steady_size / 2)
                self.size = max(min(self.size, floor), self.size * 0.9)
        return self.paused

    def resume_wait_ms(self, buffer_ms: float) -> float:
        """How long a paused stream sleeps before the buffer is back at the target."""
        return max(0.0, buffer_ms - self.cfg.target_ms)


SENTENCE_CHARS = 160  # a long spoken sentence: the first segment of a whole_sentences engine


def profile_for(unit: str, *, first_tokens: int, steady_tokens: int, first_chars: int,
                max_chars: int, target_ms: float, min_ms: float, max_ms: float,
                lock: int | None, low_latency: bool, sub_sentence: bool = False,
                whole_sentences: bool = False) -> RateConfig:
    """Rate bounds for a backend's unit: 8..64 tokens, or clause..sentence sized char segments
    (an engine that wants whole sentences starts with one of up to SENTENCE_CHARS)."""
    if unit == "tokens":
        return RateConfig(target_ms, min_ms, max_ms, first_size=first_tokens, min_size=8,
                          steady_size=max(8, min(steady_tokens, 64)), max_size=64, lock=lock,
                          low_latency=low_latency)
    first = max(16, first_chars // 2) if low_latency else first_chars
    if whole_sentences:
        first = max(first_chars, min(SENTENCE_CHARS, max_chars))
    return RateConfig(target_ms, min_ms, max_ms, first_size=first, min_size=16,
                      steady_size=max_chars, max_size=max_chars, lock=lock,
                      low_latency=low_latency, cap_by_buffer=not sub_sentence)
