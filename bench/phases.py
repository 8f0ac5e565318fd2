"""The benchmark's phases, each over a list of subjects, each returning plain figures.

1. first audio: every prompt, subjects interleaved (so load drift hits all of them alike);
2. whole streams: RTF, chunk sizes, jitter, underflows, server RSS and CPU;
3. the concurrency sweep: N streams arriving at once;
4. the narration: five minutes of speech, buffer depth over time.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.clients import Subject
from bench.procs import CLK_TCK, ProcStats, Usage
from bench.record import DEFAULT_BUFFER_MS, StreamRecord, first_audio, spread


@dataclass
class Tally:
    """Everything one subject recorded, phase by phase."""

    subject: Subject
    first: dict[str, list[StreamRecord]] = field(default_factory=dict)  # prompt kind -> runs
    whole: list[tuple[StreamRecord, Usage | None, int | None]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def note(self, rec: StreamRecord) -> None:
        if rec.status in ("error", "busy"):
            self.errors.append(f"{rec.status}: {rec.error}")


async def speak(s: Subject, text: str, *, first_audio_only: bool = False,
                low_latency: bool = False) -> StreamRecord:
    """`s.speak`, with a failure of any kind recorded as an error stream: one broken
    transport must not end a run of many minutes (its errors are counted and shown)."""
    started = time.monotonic()
    try:
        if low_latency:
            return await s.speak(text, first_audio_only=first_audio_only,  # type: ignore[call-arg]
                                 fields={"low_latency": True})
        return await s.speak(text, first_audio_only=first_audio_only)
    except Exception as e:  # recorded, and reported as the subject's error
        rec = StreamRecord(started)
        rec.error = f"{type(e).__name__}: {e}"
        rec.end(time.monotonic(), "error")
        return rec


# --- the server's own counters ------------------------------------------------------------


async def server_underflows(http: aiohttp.ClientSession, url: str | None,
                            backend: str) -> int | None:
    """tts_underflow_count for `backend` from Morpheus' /metrics (None without a server)."""
    if url is None:
        return None
    async with http.get(url + "/metrics") as r:
        text = await r.text()
    label = f'backend="{backend}"'
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("tts_underflow_count{") and label in line))


# --- 1. first audio -----------------------------------------------------------------------


async def first_audio_phase(tallies: Sequence[Tally], prompts: Mapping[str, Sequence[str]],
                            repeats: int, segment_of: Any = None) -> None:
    """Each prompt on each subject in turn; paced subjects stop after their first audio.
    Raw engines also speak the server's first segment of each prompt (`segment_of`); adapters
    alone speak only that segment, to their first chunk (the like-for-like baseline of the
    server's first audio). Subjects with `LOW_LATENCY` also ask with `low_latency: true`."""
    for _ in range(repeats):
        for kind, texts in prompts.items():
            for text in texts:
                for t in tallies:
                    if t.subject.kind == "adapter":
                        if segment_of is not None:
                            seg = await speak(t.subject, segment_of(t.subject.backend, text),
                                            first_audio_only=True)
                            t.note(seg)
                            t.first.setdefault(f"first_segment_{kind}", []).append(seg)
                        continue
                    rec = await speak(t.subject, text, first_audio_only=t.subject.paced)
                    t.note(rec)
                    t.first.setdefault(kind, []).append(rec)
                    if t.subject.kind == "raw" and segment_of is not None:
                        seg = await speak(t.subject, segment_of(t.subject.backend, text))
                        t.first.setdefault(f"first_segment_{kind}", []).append(seg)
                    if kind == "sentence" and getattr(t.subject, "LOW_LATENCY", False):
                        low = await speak(t.subject, text, low_latency=True)
                        t.note(low)
                        t.first.setdefault("low_latency", []).append(low)


# --- 2. whole streams ---------------------------------------------------------------------


# CPU time is counted in clock ticks (10 ms): a run that costs a tick or two (espeak-ng says a
# sentence in ~15 ms of CPU) reads 0 or 2x its cost. Such a subject speaks its text again,
# each run a whole stream of its own, until the runs together cost MIN_CPU_S, five ticks (or
# MAX_REPEAT_S of wall time has passed: a measurement that still reads 0 then is broken).
MIN_CPU_S = 5 / CLK_TCK
MAX_REPEAT_S = 10.0


async def whole_stream_phase(tallies: Sequence[Tally], text_for: Any, runs_for: Any,
                             http: aiohttp.ClientSession, url: str | None) -> None:
    tallies = [t for t in tallies if t.subject.kind != "adapter"]  # first chunks only
    rounds = max(runs_for(t.subject) for t in tallies)
    for i in range(rounds):
        for t in tallies:
            if i >= runs_for(t.subject):
                continue
            await _whole_streams(t, text_for(t.subject), http, url, last=i == rounds - 1
                                 or i == runs_for(t.subject) - 1)


async def _whole_streams(t: Tally, text: str, http: aiohttp.ClientSession, url: str | None,
                         last: bool) -> None:
    """One whole stream; on a subject's last round, more until its CPU time is measurable."""
    started = time.monotonic()
    while True:
        before = await _underflows(t.subject, http, url)
        async with ProcStats(t.subject.pid) as stats:
            rec = await speak(t.subject, text)
        after = await _underflows(t.subject, http, url)
        t.note(rec)
        delta = None if before is None or after is None else after - before
        t.whole.append((rec, stats.usage, delta))
        cpu = sum(u.cpu_s for r, u, _ in t.whole if u is not None and r.ok)
        if (not last or stats.usage is None or not rec.ok
                or cpu >= MIN_CPU_S or time.monotonic() - started > MAX_REPEAT_S):
            return


async def _underflows(s: Subject, http: aiohttp.ClientSession, url: str | None) -> int | None:
    return await server_underflows(http, url, s.backend) if s.kind == "morpheus" else None


def figures(t: Tally, buffer_ms: float = DEFAULT_BUFFER_MS) -> dict[str, Any]:
    """The per-stream figures of one subject (first audio, then its whole streams)."""
    s = t.subject
    out: dict[str, Any] = {"subject": s.name, "kind": s.kind, "backend": s.backend,
                           "transport": s.transport}
    names = {"sentence": "first_audio_ms", "short": "first_audio_short_ms",
             "first_segment_sentence": "first_segment_ms",
             "first_segment_short": "first_segment_short_ms",
             "low_latency": "first_audio_low_latency_ms"}
    for kind, recs in t.first.items():
        out[names.get(kind, f"first_audio_{kind}_ms")] = first_audio(recs)
    whole = [(r, u, d) for r, u, d in t.whole if r.ok]
    recs = [r for r, _, _ in whole]
    if recs:
        chunks = [ms for r in recs for _, ms in r.arrivals]
        jit = [j for r in recs if (j := r.jitter()) is not None]
        steady = [x for r in recs if (x := r.rtf_after()) is not None]
        plays = [r.playback(buffer_ms) for r in recs]
        server = [d for _, _, d in whole if d is not None]
        usage = [u for _, u, _ in whole if u is not None]
        audio_s = sum(r.audio_ms for r in recs) / 1000
        out |= {
            "whole_streams": len(recs),
            "audio_s": audio_s / len(recs),
            "rtf": statistics.median(r.rtf or 0.0 for r in recs),
            "rtf_after_1s": statistics.median(steady) if steady else None,
            "chunk_ms": {"avg": sum(chunks) / len(chunks), "min": min(chunks),
                         "max": max(chunks)},
            "jitter_ms": statistics.mean(j["j_ms"] for j in jit) if jit else None,
            "jitter_abs_d_p95_ms": max(j["abs_d_p95_ms"] for j in jit) if jit else None,
            # WebRTC is paced by the server, which counts its underflows exactly; the others
            # are a client that starts at `buffer_ms` and plays in real time.
            "underflows": (sum(server) if server else None) if s.transport == "webrtc"
            else sum(p.underflows for p in plays),
            "starved_ms": None if s.transport == "webrtc" else sum(p.starved_ms for p in plays),
            "server_underflows": sum(server) if server else None,
            "peak_rss_mb": max(u.peak_rss_mb for u in usage) if usage and s.kind != "raw"
            else None,
            "cpu_pct_per_stream": statistics.median(u.cpu_pct_per_stream(1) for u in usage)
            if usage else None,
            "cpu_s": sum(u.cpu_s for u in usage) if usage else None,  # measured over
            "cpu_s_per_audio_s": sum(u.cpu_s for u in usage) / audio_s
            if usage and audio_s else None,
        }
    out["errors"] = len(t.errors)
    if t.errors:
        out["first_error"] = t.errors[0]
    return out


# --- 3. concurrency -----------------------------------------------------------------------


async def sweep(s: Subject, levels: Sequence[int], text: str | Sequence[str],
                http: aiohttp.ClientSession, url: str | None,
                buffer_ms: float = DEFAULT_BUFFER_MS) -> list[dict[str, Any]]:
    """N streams started at once, for each N in `levels`: stream i speaks `text[i]` (texts
    taken in turn), or all the one `text`."""
    texts = [text] if isinstance(text, str) else list(text)
    rows = []
    for n in levels:
        before = await _underflows(s, http, url)
        async with ProcStats(s.pid) as stats:
            t0 = time.monotonic()
            recs = await asyncio.gather(*(speak(s, texts[i % len(texts)]) for i in range(n)))
            wall = time.monotonic() - t0
        after = await _underflows(s, http, url)
        ok = [r for r in recs if r.ok]
        audio_s = sum(r.audio_ms for r in ok) / 1000
        row: dict[str, Any] = {
            "subject": s.name, "kind": s.kind, "backend": s.backend, "transport": s.transport,
            "streams": n, "text_chars": round(sum(map(len, texts)) / len(texts)),
            "first_audio_ms": spread([r.first_audio_ms for r in ok if r.first_audio_ms]),
            "slowest_rtf": min((r.rtf or 0.0 for r in ok), default=None),
            "aggregate_rtf": audio_s / wall if wall else None,
            "underflows": sum(r.playback(buffer_ms).underflows for r in ok),
            "server_underflows": None if before is None or after is None else after - before,
            "rejected_429": sum(r.status == "busy" for r in recs),
            "errors": sum(r.status == "error" for r in recs),
            "wall_s": wall,
        }
        if stats.usage is not None:
            row["peak_rss_mb"] = stats.usage.peak_rss_mb
            row["cpu_pct_per_stream"] = stats.usage.cpu_pct_per_stream(n)
        errors = [r.error for r in recs if r.status == "error"]
        if errors:
            row["first_error"] = errors[0]
        rows.append(row)
    return rows


# --- 4. narration -------------------------------------------------------------------------


async def narration(s: Subject, text: str, http: aiohttp.ClientSession, url: str | None,
                    buffer_ms: float = DEFAULT_BUFFER_MS) -> dict[str, Any]:
    before = await _underflows(s, http, url)
    async with ProcStats(s.pid) as stats:
        rec = await speak(s, text)
    after = await _underflows(s, http, url)
    play = rec.playback(buffer_ms)
    return {
        "subject": s.name, "backend": s.backend, "transport": s.transport,
        "status": rec.status, "error": rec.error, "text_chars": len(text),
        "audio_s": rec.audio_ms / 1000, "wall_s": rec.wall_s,
        "first_audio_ms": rec.first_audio_ms, "rtf": rec.rtf, "rtf_after_1s": rec.rtf_after(),
        "underflows": play.underflows, "starved_ms": play.starved_ms,
        "server_underflows": None if before is None or after is None else after - before,
        "min_buffer_ms": play.min_ms,
        "peak_rss_mb": stats.usage.peak_rss_mb if stats.usage else None,
        "buffer_depth": {"t_s": play.depth_t_s, "ms": play.depth_ms},
    }


__all__ = ["Tally", "figures", "first_audio_phase", "narration", "server_underflows", "speak",
           "sweep", "whole_stream_phase"]
