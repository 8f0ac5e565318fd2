"""The benchmark's own logic, without servers: the one targets table, the CPU rule, the soak's
player and its short-stream judge, the command line."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from bench.cli import legacy, parse
from bench.clients import Subject
from bench.parts.soak.clients import Attempt, Behaviour, Player
from bench.parts.soak.figures import SHORT_TOLERANCE, short_of
from bench.phases import MIN_CPU_S, Tally, whole_stream_phase
from bench.record import StreamRecord
from bench.suite import PARTS
from bench.targets import TARGETS, capacity, judge


def test_every_target_belongs_to_a_part_and_only_parts_that_ran_are_judged() -> None:
    assert {t.part for t in TARGETS} <= set(PARTS)
    doc = {"parts": {"orchestrator": {"rtf1.5_underflows": 0, "rtf20.0_underflows": 2,
                                      "jitter_p95_ms": 12.0}}}
    judged = judge(doc)
    assert {t["part"] for t in judged} == {"orchestrator"}
    by_name = {t["target"]: t for t in judged}
    assert by_name["synthetic 1.5x, narration on the virtual clock: underflows"]["met"] is True
    assert by_name["synthetic 20x, narration on the virtual clock: underflows"]["met"] is False
    assert by_name["synthetic 1.5x, real clock: underflows"]["met"] is None  # not measured


def test_soak_targets_read_the_soak_figures() -> None:
    soak = {"outcomes": {"http_5xx": 1, "failed": 0}, "short_streams": {"count": 0},
            "resources": {"primary": {"end_over_start": {"rss_mb": 1.02, "fds": 1.0,
                                                         "threads": 1.2}}}}
    judged = judge({"parts": {"soak": soak}})
    missed = [t["target"] for t in judged if t["met"] is False]
    assert len(judged) == 6 and all(t["met"] is not None for t in judged)
    assert len(missed) == 2 and missed[0].startswith("5xx") and "threads" in missed[1], missed


def test_capacity_counts_up_to_the_first_level_that_did_not_hold() -> None:
    def row(n: int, p95: float, underflows: int = 0) -> dict:
        return {"subject": "s", "streams": n, "underflows": underflows, "rejected_429": 0,
                "errors": 0, "first_audio_ms": {"p50": p95, "p95": p95, "n": n}}

    doc = {"parts": {"transports": {"concurrency": [row(1, 50), row(2, 80), row(4, 2000),
                                                    row(8, 100)]}}}
    assert capacity(doc) == {"s": 2}


def test_a_bench_json_from_before_the_parts_still_renders() -> None:
    old = {"machine": {}, "backends": [], "concurrency": [], "server": {"url": "x"}}
    new = legacy(old)
    assert new["parts"]["transports"]["server"] == {"url": "x"} and "backends" not in new


def test_the_command_line_picks_parts_and_knobs() -> None:
    opts = parse(["--parts", "snac,soak", "--soak-s", "60", "--set", "snac.threads=2",
                  "--out", "/tmp/x"])
    assert opts.parts == ("snac", "soak") and opts.soak_s == 60
    assert opts.params == {"snac.threads": "2"}
    assert parse(["--quick"]).parts == ("transports",)
    assert parse([]).parts == tuple(PARTS)
    with pytest.raises(SystemExit):
        parse(["--parts", "speech"])  # merged into transports


class Cheap(Subject):
    """An 'engine' that costs a sliver of CPU per call, in this process."""

    kind = "raw"

    async def speak(self, text: str, *, first_audio_only: bool = False) -> StreamRecord:
        rec = StreamRecord(time.monotonic())
        t0 = time.process_time()
        while time.process_time() - t0 < 0.002:  # ~2 ms of CPU: under one clock tick
            pass
        rec.add(time.monotonic(), 1000.0)
        rec.end(time.monotonic(), "ok")
        return rec


async def test_cpu_is_measured_over_at_least_five_ticks_however_cheap_the_run() -> None:
    t = Tally(Cheap("cheap", os.getpid()))
    await whole_stream_phase([t], lambda s: "x", lambda s: 1, None, None)  # type: ignore[arg-type]
    assert len(t.whole) > 1  # one run was below the resolution, so it spoke again
    cpu = sum(u.cpu_s for _, u, _ in t.whole if u is not None)
    assert cpu >= MIN_CPU_S


def test_player_reports_an_underflow_only_when_it_runs_dry_before_the_end() -> None:
    p = Player(start_ms=300)
    t = 100.0
    p.feed(400, t)  # starts playing
    played, queued = p.position(t + 0.2)
    assert played == pytest.approx(200, abs=1) and queued == pytest.approx(200, abs=1)
    p.position(t + 0.5)  # 400 ms played: dry before the response ended
    assert p.underflows == 1
    p.feed(100, t + 0.6)
    p.finish(t + 0.6)  # a short tail plays out without waiting for 300 ms
    assert p.left_ms(t + 0.65) == pytest.approx(50, abs=1) and p.underflows == 1


def _done(transport: str, audio_ms: float, backend: str | None = None,
          degraded: bool = False, candidates: tuple[str, ...] = ()) -> Attempt:
    a = Attempt(transport, "some text", None, Behaviour(), candidates=candidates)
    a.rec.add(a.rec.requested_at + 0.1, audio_ms)
    a.rec.backend, a.rec.degraded = backend, degraded
    return a


def test_short_streams_are_judged_by_the_backend_that_spoke_or_the_most_lenient_one() -> None:
    refs = {"piper": {"some text": 1000.0}, "espeak": {"some text": 700.0},
            "openai_tts": {"some text": 900.0}}
    cut = (1 - SHORT_TOLERANCE) * 1000
    assert short_of(_done("ws", cut + 1, "piper"), refs, {"piper"}) is None
    assert short_of(_done("ws", cut - 1, "piper"), refs, {"piper"}) is not None
    assert short_of(_done("ws", 100, "piper", degraded=True), refs, {"piper"}) is None
    # unattributed (Wyoming, ElevenLabs): short only if no possible engine explains it
    assert short_of(_done("wyoming", 0.85 * 700 + 1), refs, {"piper"}) is None
    assert short_of(_done("wyoming", 0.85 * 700 - 1), refs, {"piper"}) is not None
    # a PCM stream may fail over after its headers: its backend or the fallback
    assert short_of(_done("http_pcm", 700, "piper", candidates=("piper", "fallback")), refs,
                    {"piper"}) is None


def test_the_actor_cancels_only_after_first_audio() -> None:
    from bench.parts.soak.clients import Actor

    async def go() -> list[float]:
        a = Attempt("ws", "t", None, Behaviour("cancel", 0.05))
        acted: list[float] = []

        async def act() -> None:
            acted.append(time.monotonic())

        async with Actor(a, act):
            await asyncio.sleep(0.1)
            assert not acted  # no audio yet
            a.rec.add(time.monotonic(), 20.0)
            first = time.monotonic()
            await asyncio.sleep(0.2)
        assert a.acted and acted and acted[0] - first >= 0.04
        return acted

    asyncio.run(go())


def test_soak_docs_name_every_fault() -> None:
    from bench.parts.soak import faults

    doc = (Path(__file__).resolve().parent.parent / "docs" / "bench" / "soak.md").read_text()
    names = [f.name for f in faults.Faults.__new__(faults.Faults).schedule()]
    assert all(f"`{n}`" in doc for n in names), names
