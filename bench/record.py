"""One stream as a client saw it, and every per-stream figure computed from it.

A `StreamRecord` holds when the request went out and when each piece of audio arrived (with
its duration); first audio, RTF, chunk sizes, delivery jitter and the underflows of a client
that plays in real time are all derived from that log, the same way for every transport,
peer and raw engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

DEFAULT_BUFFER_MS = 300.0  # PLAYBACK_BUFFER_MS's default: the client starts playing at this depth
DEPTH_STEP_S = 0.25  # buffer-depth series resolution (plots, bench.json)


@dataclass
class StreamRecord:
    """Arrivals on the monotonic clock (seconds) with their audio duration (ms)."""

    requested_at: float
    arrivals: list[tuple[float, float]] = field(default_factory=list)
    ended_at: float | None = None
    status: str = "ok"  # ok | busy (429 / busy event) | error | cancelled (after first audio)
    error: str | None = None
    # What the server said about the stream, where its protocol says it: the backend that
    # spoke, whether it failed over (`degraded`), the HTTP status of the request.
    backend: str | None = None
    degraded: bool = False
    http_status: int | None = None

    def add(self, at: float, audio_ms: float) -> None:
        if audio_ms > 0:
            self.arrivals.append((at, audio_ms))

    def end(self, at: float, status: str | None = None) -> None:
        self.ended_at = at
        if status is not None:
            self.status = status

    # --- figures --------------------------------------------------------------------------

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "cancelled") and bool(self.arrivals)

    @property
    def first_audio_ms(self) -> float | None:
        return 1000 * (self.arrivals[0][0] - self.requested_at) if self.arrivals else None

    @property
    def audio_ms(self) -> float:
        return sum(ms for _, ms in self.arrivals)

    @property
    def wall_s(self) -> float | None:
        end = self.ended_at if self.ended_at is not None else (
            self.arrivals[-1][0] if self.arrivals else None)
        return None if end is None else end - self.requested_at

    @property
    def rtf(self) -> float | None:
        """Audio seconds per wall second, from the request to the end of the stream."""
        wall = self.wall_s
        return self.audio_ms / 1000 / wall if wall and self.arrivals else None

    def rtf_after(self, skip_s: float = 1.0) -> float | None:
        """RTF from `skip_s` after first audio to the last arrival (the steady part);
        None when the stream is over before a quarter second of that part has passed."""
        if not self.arrivals:
            return None
        start = self.arrivals[0][0] + skip_s
        last = self.arrivals[-1][0]
        if last - start < 0.25:
            return None
        audio = sum(ms for at, ms in self.arrivals if at > start)
        return audio / 1000 / (last - start)

    def chunk_ms(self) -> dict[str, float] | None:
        sizes = [ms for _, ms in self.arrivals]
        if not sizes:
            return None
        return {"avg": float(np.mean(sizes)), "min": float(min(sizes)), "max": float(max(sizes)),
                "count": float(len(sizes))}

    def jitter(self, skip_s: float = 1.0) -> dict[str, float] | None:
        """RFC 3550 interarrival jitter against media time: D = arrival gap - the previous
        chunk's duration, J += (|D| - J) / 16; averaged (and the p95 of |D|) over the part
        after the first `skip_s` (the start fills the client's buffer faster on purpose)."""
        if len(self.arrivals) < 3:
            return None
        t0 = self.arrivals[0][0]
        j = 0.0
        js, ds = [], []
        for (t_prev, ms_prev), (t, _) in zip(self.arrivals, self.arrivals[1:], strict=False):
            d = abs(1000 * (t - t_prev) - ms_prev)
            j += (d - j) / 16
            if t - t0 > skip_s:
                js.append(j)
                ds.append(d)
        if not js:
            return None
        return {"j_ms": float(np.mean(js)), "abs_d_p95_ms": float(np.percentile(ds, 95))}

    def playback(self, buffer_ms: float = DEFAULT_BUFFER_MS) -> Playback:
        return simulate_playback(self.arrivals, buffer_ms)


@dataclass
class Playback:
    underflows: int
    starved_ms: float
    min_ms: float | None  # the lowest queue while playing, before the last arrival
    depth_t_s: list[float]  # seconds since first audio
    depth_ms: list[float]


def simulate_playback(arrivals: list[tuple[float, float]], buffer_ms: float) -> Playback:
    """A client that starts playing once `buffer_ms` is queued (or the stream is over) and
    then plays in real time. Running dry before the last arrival is an underflow; it then
    waits for `buffer_ms` again. Returns the count, the time spent stalled and the queue depth
    on a DEPTH_STEP_S grid."""
    if not arrivals:
        return Playback(0, 0.0, None, [], [])
    t0 = arrivals[0][0]
    last = arrivals[-1][0]
    queued = 0.0
    playing = False
    stalled_at: float | None = None
    underflows = 0
    starved = 0.0
    t_prev = t0
    lowest: float | None = None
    events: list[tuple[float, float]] = []  # (t, depth) at each change of slope
    for at, ms in arrivals:
        if playing:
            elapsed = 1000 * (at - t_prev)
            if elapsed >= queued:  # ran dry before this arrival
                dry_at = t_prev + queued / 1000
                events.append((dry_at, 0.0))
                underflows += 1
                playing, queued, stalled_at = False, 0.0, dry_at
            else:
                queued -= elapsed
            lowest = queued if lowest is None else min(lowest, queued)
        events.append((at, queued))
        queued += ms
        t_prev = at
        if not playing and (queued >= buffer_ms or at >= last):
            playing = True
            if stalled_at is not None:
                starved += 1000 * (at - stalled_at)
                stalled_at = None
        events.append((at, queued))
    events.append((last + queued / 1000, 0.0))  # plays out the rest
    return Playback(underflows, starved, lowest, *_depth_grid(events, t0))


def _depth_grid(events: list[tuple[float, float]], t0: float) -> tuple[list[float], list[float]]:
    """Sample the depth curve every DEPTH_STEP_S: the lowest depth seen within a step, so a
    dip to zero is never lost between two samples."""
    end = events[-1][0]
    steps = max(1, math.ceil((end - t0) / DEPTH_STEP_S))
    ts = [round(i * DEPTH_STEP_S, 3) for i in range(steps + 1)]
    ms = [0.0] * len(ts)
    seen = [False] * len(ts)
    for at, depth in events:
        i = min(len(ts) - 1, int((at - t0) / DEPTH_STEP_S))
        ms[i] = depth if not seen[i] else min(ms[i], depth)
        seen[i] = True
    for i in range(1, len(ms)):  # a step with no event keeps draining the previous level
        if not seen[i]:
            ms[i] = max(0.0, ms[i - 1] - 1000 * DEPTH_STEP_S)
    return ts, [round(x, 1) for x in ms]


# --- summaries over many records ---------------------------------------------------------


def pct(xs: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(xs, dtype=float), q)) if xs else None


def spread(xs: list[float]) -> dict[str, float | None]:
    """p50 / p95 / n of a sample (None when empty)."""
    return {"p50": pct(xs, 50), "p95": pct(xs, 95), "n": len(xs)}


def first_audio(records: list[StreamRecord]) -> dict[str, float | None]:
    return spread([r.first_audio_ms for r in records if r.first_audio_ms is not None])


__all__ = ["DEFAULT_BUFFER_MS", "Playback", "StreamRecord", "first_audio", "pct",
           "simulate_playback", "spread"]
