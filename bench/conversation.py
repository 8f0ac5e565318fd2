"""Simulated conversational agents: each speaks a reply of 1-3 sentences, which its listener
plays out in real time, then listens through its user's turn (2-8 s) and speaks again. A probe
runs N of them against one subject for a while and says whether the subject held them.

Agents are independent: each starts at a random point of its first cycle (uniform over one
mean cycle, ~10 s, so the load is steady from the start rather than a burst) and draws its
own replies and turns, so the requests of many agents arrive as a Poisson stream. A reply
ends when its listener has heard it all (the arrivals played through a 300 ms buffer, as
bench/record.py plays every stream), not when the server has sent it: a server that sends
faster than real time does not make its agents speak more often.

Held: the p95 of every reply's first audio within 250 ms, no underflow in any listener's
playback, no error, no refusal, and every reply finished.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

from bench.clients import Subject
from bench.phases import speak
from bench.procs import ProcStats
from bench.prompts import REPLY_SENTENCES
from bench.record import DEFAULT_BUFFER_MS, StreamRecord, pct, simulate_playback

FIRST_AUDIO_P95_MS = 250.0
LISTEN_S = (2.0, 8.0)  # the user's turn
SENTENCES_PER_REPLY = (1, 3)
START_SPREAD_S = 10.0  # about one mean cycle: ~5 s of reply, ~5 s of listening
DRAIN_S = 30.0  # after the probe, replies in flight get this long to finish


def reply_text(rng: random.Random) -> str:
    return " ".join(rng.sample(REPLY_SENTENCES, rng.randint(*SENTENCES_PER_REPLY)))


def played_out_at(rec: StreamRecord, buffer_ms: float = DEFAULT_BUFFER_MS) -> float:
    """When the listener has heard the whole reply (monotonic seconds): it starts playing at
    `buffer_ms` queued (or at the last arrival), and waits through any underflow."""
    if not rec.arrivals:
        return rec.ended_at or time.monotonic()
    queued, playing, clock = 0.0, False, rec.arrivals[0][0]
    for at, ms in rec.arrivals:
        if playing:
            queued = max(0.0, queued - 1000 * (at - clock))
            if queued == 0.0:  # ran dry: waits for the buffer again
                playing = False
        clock = at
        queued += ms
        if not playing and (queued >= buffer_ms or at >= rec.arrivals[-1][0]):
            playing = True
    return max(clock + queued / 1000, rec.ended_at or clock)


@dataclass
class ProbeResult:
    """N agents against one subject for `duration_s`: every reply's figures."""

    subject: str
    agents: int
    duration_s: float
    first_audio_ms: list[float] = field(default_factory=list)
    replies: int = 0
    underflows: int = 0
    errors: int = 0
    refused: int = 0
    unfinished: int = 0  # still in flight when the drain ran out
    speech_s: float = 0.0  # audio of every reply
    load_1min: tuple[float, float] = (0.0, 0.0)  # the machine's, at the start and the end
    server_cpu_pct: float | None = None  # % of one core
    first_error: str | None = None

    @property
    def p95_ms(self) -> float | None:
        return pct(self.first_audio_ms, 95)

    @property
    def held(self) -> bool:
        p95 = self.p95_ms
        return (self.replies > 0 and p95 is not None and p95 <= FIRST_AUDIO_P95_MS
                and not (self.underflows or self.errors or self.refused or self.unfinished))

    def note(self, rec: StreamRecord, buffer_ms: float) -> None:
        self.replies += 1
        if rec.status == "busy":
            self.refused += 1
        elif not rec.ok:
            self.errors += 1
            self.first_error = self.first_error or rec.error
        if rec.first_audio_ms is not None:
            self.first_audio_ms.append(rec.first_audio_ms)
        self.underflows += simulate_playback(rec.arrivals, buffer_ms).underflows
        self.speech_s += rec.audio_ms / 1000

    def figures(self) -> dict[str, Any]:
        p50 = pct(self.first_audio_ms, 50)
        return {"agents": self.agents, "duration_s": self.duration_s, "replies": self.replies,
                "first_audio_p50_ms": None if p50 is None else round(p50, 1),
                "first_audio_p95_ms": None if self.p95_ms is None else round(self.p95_ms, 1),
                "underflows": self.underflows, "errors": self.errors, "refused": self.refused,
                "unfinished": self.unfinished, "speech_s": round(self.speech_s, 1),
                "load_1min": list(self.load_1min), "server_cpu_pct": self.server_cpu_pct,
                "held": self.held, **({"first_error": self.first_error}
                                      if self.first_error else {})}


async def _agent(subject: Subject, rng: random.Random, until: float, result: ProbeResult,
                 buffer_ms: float, in_flight: list[int]) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(rng.uniform(0, START_SPREAD_S))
    while loop.time() < until:
        text = reply_text(rng)
        in_flight[0] += 1
        rec = await speak(subject, text)
        in_flight[0] -= 1
        result.note(rec, buffer_ms)
        heard = played_out_at(rec, buffer_ms) + rng.uniform(*LISTEN_S)
        await asyncio.sleep(max(0.0, min(heard, until) - time.monotonic()))


async def probe(subject: Subject, agents: int, duration_s: float, *, seed: int,
                buffer_ms: float = DEFAULT_BUFFER_MS) -> ProbeResult:
    """`agents` agents talk to `subject` for `duration_s` (no reply starts later); replies in
    flight then get DRAIN_S to finish. The same seed gives every subject the same replies
    and turns."""
    result = ProbeResult(subject.name, agents, duration_s)
    loop = asyncio.get_running_loop()
    until = loop.time() + duration_s
    in_flight = [0]
    load0 = os.getloadavg()[0]
    async with ProcStats(subject.pid) as stats:
        tasks = [asyncio.create_task(_agent(subject, random.Random(seed * 1000 + i), until,
                                            result, buffer_ms, in_flight))
                 for i in range(agents)]
        _, late = await asyncio.wait(tasks, timeout=duration_s + DRAIN_S)
        for t in late:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    result.unfinished = in_flight[0]
    result.load_1min = (round(load0, 2), round(os.getloadavg()[0], 2))
    if stats.usage is not None and stats.usage.wall_s:
        result.server_cpu_pct = round(100 * stats.usage.cpu_s / stats.usage.wall_s, 1)
    return result


__all__ = ["FIRST_AUDIO_P95_MS", "LISTEN_S", "ProbeResult", "played_out_at", "probe",
           "reply_text"]
