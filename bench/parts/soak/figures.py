"""The soak's figures: what each text needs, which streams fell short of it, requests by outcome,
underflows, and the servers' memory, descriptors and threads over the run.

"What a text needs": before the load, each text the soak speaks is asked whole once per
backend that may speak it (piper, espeak, openai_tts) from the primary replica; that length is
the reference (the engine's own pace, text by text, so punctuation and numbers count). A
completed stream is short when its audio is under `(1 - SHORT_TOLERANCE)` of the reference of
the backend that spoke it. Where the face does not say which backend spoke (ElevenLabs,
Wyoming, a PCM stream that may fail over after its headers), the smallest reference of the
backends that could have is used: such a stream is short only if no possible engine explains
it. Failovers flagged `degraded` are left out, as the issue says.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.parts.soak.clients import BYTES_PER_MS, Attempt
from bench.procs import Resources
from bench.record import spread

SHORT_TOLERANCE = 0.15  # Piper's durations vary run to run by a few percent (noise_w)
SAMPLE_S = 1.0  # resources and counters sampled this often
ENGINES = ("piper", "espeak", "openai_tts")


async def reference_ms(http: aiohttp.ClientSession, url: str, texts: Sequence[str]
                       ) -> dict[str, dict[str, float]]:
    """{backend: {text: audio ms}}, each text asked whole once per backend."""
    out: dict[str, dict[str, float]] = {b: {} for b in ENGINES}
    for backend in ENGINES:
        for text in texts:
            async with http.post(url + "/v1/audio/speech", json={
                    "input": text, "backend": backend, "response_format": "pcm",
                    "stream": False}) as r:
                body = await r.read()
                if r.status != 200 or r.headers.get("X-Degraded") == "true":
                    raise RuntimeError(f"calibration of {backend}: {r.status} "
                                       f"{r.headers.get('X-Degraded')} {body[:200]!r}")
            out[backend][text] = len(body) / BYTES_PER_MS
    return out


def short_of(a: Attempt, refs: dict[str, dict[str, float]], active: set[str],
             fallback: str = "espeak") -> dict[str, Any] | None:
    """The shortfall of a completed, not degraded stream, or None when it is whole."""
    if a.outcome != "completed" or a.rec.degraded:
        return None
    if a.rec.backend in refs and not a.candidates:
        backends: set[str] = {a.rec.backend}
    elif a.candidates:
        backends = {fallback if c == "fallback" else c for c in a.candidates}
    elif a.asked_backend:
        backends = {a.asked_backend, fallback}
    else:  # the active backend (hot-swapped during the run), or its fallback
        backends = active | {fallback}
    need = min(refs[b][a.text] for b in backends if b in refs)
    got = a.rec.audio_ms
    if got >= (1 - SHORT_TOLERANCE) * need:
        return None
    return {"transport": a.transport, "backend": a.rec.backend, "asked": a.asked_backend,
            "replica": a.replica, "text_chars": len(a.text), "audio_ms": round(got, 1),
            "needs_ms": round(need, 1)}


@dataclass
class Tally:
    """Every request of the load, by outcome; every refusal; every 5xx."""

    attempts: list[Attempt] = field(default_factory=list)  # final attempts
    refusals: Counter[str] = field(default_factory=Counter)  # by transport
    retried_ok: int = 0  # requests refused at first that completed on a retry
    http_5xx: Counter[int] = field(default_factory=Counter)
    t0: float = 0.0
    events: list[tuple[float, str, str]] = field(default_factory=list)  # (s, transport, outcome)

    def add(self, a: Attempt, refused_before: int) -> None:
        self.attempts.append(a)
        if refused_before and a.outcome == "completed":
            self.retried_ok += 1
        self.events.append((round(time.monotonic() - self.t0, 2), a.transport, a.outcome))

    def rows(self) -> list[dict[str, Any]]:
        """One line per request (OUT/soak/requests.jsonl), for finding what went wrong."""
        return [{"t_s": round(a.rec.requested_at - self.t0, 2), "transport": a.transport,
                 "asked": a.asked_backend, "backend": a.rec.backend, "degraded": a.rec.degraded,
                 "behaviour": a.behaviour.kind, "outcome": a.outcome, "reason": a.reason,
                 "replica": a.replica, "chars": len(a.text),
                 "audio_ms": round(a.rec.audio_ms, 1), "first_audio_ms": a.rec.first_audio_ms}
                for a in self.attempts]

    def refused(self, a: Attempt) -> None:
        self.refusals[a.transport] += 1
        for code in a.http_5xx:
            self.http_5xx[code] += 1

    def count_5xx(self, a: Attempt) -> None:
        for code in a.http_5xx:
            self.http_5xx[code] += 1

    def figures(self, refs: dict[str, dict[str, float]], active: set[str],
                buffer_ms: float) -> dict[str, Any]:
        by = Counter(a.outcome for a in self.attempts)
        per: dict[str, Counter[str]] = {}
        for a in self.attempts:
            per.setdefault(a.transport, Counter())[a.outcome] += 1
        shorts = [{"t_s": round(a.rec.requested_at - self.t0, 2), **s} for a in self.attempts
                  if (s := short_of(a, refs, active)) is not None]
        failed = [a for a in self.attempts if a.outcome == "failed"]
        done = [a for a in self.attempts if a.outcome == "completed"]
        return {
            "outcomes": {
                "requests": len(self.attempts), "completed": by["completed"],
                "cancelled": by["cancelled"], "refused": by["refused"], "failed": by["failed"],
                "refusals_retried": sum(self.refusals.values()),
                "refusals_by_transport": dict(self.refusals),
                "completed_after_refusal": self.retried_ok,
                "http_5xx": sum(self.http_5xx.values()),
                "http_5xx_by_status": {str(k): v for k, v in self.http_5xx.items()},
                "by_transport": {t: dict(c) for t, c in sorted(per.items())},
            },
            "degraded_streams": sum(a.rec.degraded for a in done),
            "failures": [{"transport": a.transport, "replica": a.replica,
                          "asked": a.asked_backend, "reason": a.reason} for a in failed][:50],
            "short_streams": {"count": len(shorts), "tolerance": SHORT_TOLERANCE,
                              "streams": shorts[:50]},
            "underflows_client": sum(a.rec.playback(buffer_ms).underflows for a in done
                                     if a.transport != "webrtc"),
            "first_audio_ms": spread([x for a in done if (x := a.rec.first_audio_ms)]),
            "audio_s": round(sum(a.rec.audio_ms for a in self.attempts) / 1000, 1),
        }


class Sampler:
    """Every SAMPLE_S: each live server's memory, descriptors and threads (from /proc), its
    `tts_underflow_count` (summed over a replica's lives: a restart zeroes it) and the
    streams in flight."""

    def __init__(self, pids: dict[str, Any], metrics_urls: dict[str, str],
                 in_flight: Any) -> None:
        self.pids = pids  # {name: () -> pid or None}
        self.urls = metrics_urls
        self.in_flight = in_flight
        self.series: dict[str, list[tuple[float, float, int, int]]] = {n: [] for n in pids}
        self.streams: list[tuple[float, int]] = []
        self.underflows: dict[str, float] = {}  # counted in earlier lives
        self._last: dict[str, tuple[int | None, float]] = {}
        self.t0 = time.monotonic()

    async def run(self, http: aiohttp.ClientSession) -> None:
        while True:
            await self.sample(http)
            await asyncio.sleep(SAMPLE_S)

    async def sample(self, http: aiohttp.ClientSession) -> None:
        t = round(time.monotonic() - self.t0, 2)
        self.streams.append((t, self.in_flight()))
        for name, pid_of in self.pids.items():
            pid = pid_of()
            if pid is None:
                continue
            try:
                r = Resources.of(pid)
            except (FileNotFoundError, ProcessLookupError):
                continue
            self.series[name].append((t, r.rss_mb, r.fds, r.threads))
            if name in self.urls:
                await self._underflows(http, name, pid)

    async def _underflows(self, http: aiohttp.ClientSession, name: str, pid: int) -> None:
        from bench.phases import server_underflows

        try:
            now = float(sum([await server_underflows(http, self.urls[name], b) or 0
                             for b in ENGINES]))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return
        last_pid, last = self._last.get(name, (None, 0.0))
        if last_pid is not None and last_pid != pid:  # a new life: keep what the old one said
            self.underflows[name] = self.underflows.get(name, 0.0) + last
        self._last[name] = (pid, now)

    def server_underflows(self) -> float:
        return sum(self.underflows.values()) + sum(v for _, v in self._last.values())


def settled(pid: int, samples: int = 8, every_s: float = 0.5) -> Any:
    """The lowest of a few readings (a health check's socket or a thread of a passing task is
    not the process's own): measured where the target compares start and end."""

    async def read() -> Resources:
        seen = []
        for _ in range(samples):
            seen.append(Resources.of(pid))
            await asyncio.sleep(every_s)
        return Resources(min(r.rss_mb for r in seen), min(r.fds for r in seen),
                         min(r.threads for r in seen))

    return read()


def resources_figures(series: list[tuple[float, float, int, int]], start: Resources,
                      end: Resources) -> dict[str, Any]:
    peak = Resources(max([start.rss_mb, *(s[1] for s in series)]),
                     max([start.fds, *(s[2] for s in series)]),
                     max([start.threads, *(s[3] for s in series)]))
    return {
        "start": vars(start), "peak": vars(peak), "end": vars(end),
        "end_over_start": {k: round(getattr(end, k) / getattr(start, k), 4)
                           for k in ("rss_mb", "fds", "threads")},
        "series": {"t_s": [s[0] for s in series], "rss_mb": [round(s[1], 1) for s in series],
                   "fds": [s[2] for s in series], "threads": [s[3] for s in series]},
    }


__all__ = ["ENGINES", "SHORT_TOLERANCE", "Sampler", "Tally", "reference_ms",
           "resources_figures", "settled", "short_of"]
