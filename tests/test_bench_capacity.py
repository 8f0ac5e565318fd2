"""The capacity part's harness: the edge search, when a listener has heard a reply, and a
probe of simulated agents against a real Morpheus (the synthetic engine, on loopback)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import aiohttp
import pytest

from bench.clients import MorpheusHttp
from bench.conversation import ProbeResult, played_out_at, probe, reply_text
from bench.parts.capacity import over_peer
from bench.record import StreamRecord
from bench.search import EdgeSearch
from tests.live_server import live_server


def run_search(search: EdgeSearch, holds_short: int, holds_long: int) -> list[tuple]:
    """Drive a search against a subject that holds `holds_short` agents for a short probe and
    `holds_long` for a long one."""
    while (step := search.next()) is not None:
        search.record(step, step.load <= (holds_long if step.confirm else holds_short))
    return search.history


def test_search_doubles_bisects_and_confirms() -> None:
    search = EdgeSearch(start=4, limit=256)
    history = run_search(search, holds_short=37, holds_long=37)
    assert [h[0] for h in history[:5]] == [4, 8, 16, 32, 64]
    assert search.result is not None and 37 * 0.9 <= search.result <= 37
    assert history[-1][1] and history[-1][2]  # the last probe is a held confirm
    assert sum(1 for h in history if h[1]) == 1
    assert len(history) <= 12


def test_search_steps_down_when_the_long_probe_fails() -> None:
    search = EdgeSearch(start=4)
    history = run_search(search, holds_short=40, holds_long=33)
    confirms = [h for h in history if h[1]]
    assert len(confirms) >= 2 and not confirms[0][2] and confirms[-1][2]
    assert search.result is not None and search.result <= 33


def test_search_reports_zero_when_even_one_fails() -> None:
    search = EdgeSearch(start=1)
    assert run_search(search, holds_short=0, holds_long=0) == [(1, False, False)]
    assert search.result == 0


def test_search_gives_up_after_its_confirms() -> None:
    search = EdgeSearch(start=1, confirms=2)
    run_search(search, holds_short=20, holds_long=0)
    assert search.done and search.result is None
    assert sum(1 for h in search.history if h[1]) == 2


def test_a_peer_that_holds_none_counts_as_one() -> None:
    assert over_peer(30, 0) == 30 and over_peer(30, 3) == 10 and over_peer(None, 2) is None


def test_played_out_waits_for_the_buffer_and_any_stall() -> None:
    rec = StreamRecord(0.0)
    rec.add(1.0, 200.0)  # below the 300 ms start buffer: waits
    rec.add(1.1, 800.0)  # 1000 ms queued at 1.1 s: plays until 2.1 s
    rec.end(1.1)
    assert played_out_at(rec, 300.0) == pytest.approx(2.1)
    stalled = StreamRecord(0.0)
    stalled.add(1.0, 400.0)  # plays 1.0-1.4, dry, then the rest arrives at 3.0
    stalled.add(3.0, 500.0)
    stalled.end(3.0)
    assert played_out_at(stalled, 300.0) == pytest.approx(3.5)


def test_replies_are_one_to_three_sentences() -> None:
    rng = random.Random(1)
    replies = [reply_text(rng) for _ in range(200)]
    counts = {sum(r.count(c) for c in ".?") for r in replies}
    assert counts <= {1, 2, 3} and len(counts) >= 2


def test_probe_runs_agents_against_a_real_server(tmp_path: Path) -> None:
    async def agents(url: str) -> ProbeResult:
        async with aiohttp.ClientSession() as http:
            subject = MorpheusHttp(url, http, "synthetic")
            return await asyncio.wait_for(probe(subject, 4, 12.0, seed=1), 90)

    with live_server(tmp_path, tts_backend="synthetic", backends="synthetic",
                     synthetic_rtf=20.0, synthetic_ttfb_ms=20.0) as srv:
        result = asyncio.run(agents(srv.url))
    # each agent starts within its first 10 s and speaks again after its reply and a 2-8 s
    # turn: 4 agents over 12 s make at least 4 replies
    assert result.replies >= 4
    assert len(result.first_audio_ms) == result.replies - result.errors
    assert result.errors == 0 and result.refused == 0 and result.unfinished == 0
    assert result.speech_s > 0
    figures = result.figures()
    assert figures["agents"] == 4 and figures["first_audio_p95_ms"] > 0
