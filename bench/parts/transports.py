"""Part `transports`: every ready backend over every transport Morpheus has, beside the raw
engine, the adapter alone and the peers a user would pick instead, all in one run.

Phases (bench/phases.py): first audio on every prompt, subjects interleaved; whole streams
(RTF, chunks, jitter, underflows, RSS and CPU); the concurrency sweep; the 5-minute narration.
Figures: `server`, one object per backend (`transports`, `raw`, `adapter`, `narration`,
`overhead_ms`), `peers`, one row per concurrency level and subject (`concurrency`).

Server overhead (`overhead_ms`): the server's first audio over HTTP minus the first chunk of
its own adapter alone in this process on the server's first segment of the same prompt (p50s):
like with like, both stream that segment the same way (bench/raw.py).
"""

from __future__ import annotations

import asyncio
import os
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from adapters import registry
from adapters.piper.adapter import bundled_voice_path
from bench import prompts
from bench.clients import Subject
from bench.phases import (
    Tally,
    figures,
    first_audio_phase,
    narration,
    speak,
    sweep,
    whole_stream_phase,
)
from bench.procs import rss_mb
from bench.raw import adapter_alone, raw_engine
from bench.servers import (
    Morpheus,
    Peer,
    describe,
    set_active_backend,
    start_morpheus,
    start_peers,
)
from bench.suite import Options, PartContext, command_line, phase
from dsp.chunker import Chunker
from server.core.rate import SENTENCE_CHARS

LEVELS = (1, 2, 4, 8, 16)
# A backend's sweep goes no higher than what its engine can carry in aggregate on this machine:
# Kokoro makes ~2.5x real time with both cores, so past 4 streams every level underflows by
# arithmetic and only lengthens the run (its target is 2 streams with no underflow).
SWEEP_MAX = {"kokoro": 4}
QUICK_LEVELS = (1, 2)


@dataclass(frozen=True)
class Plan:
    """What a run speaks, and how often: the full benchmark or `--quick`."""

    first_audio_prompts: dict[str, tuple[str, ...]]
    repeats: int
    whole_runs: int  # whole streams per unpaced subject (paced subjects: one)
    whole_text: str
    paced_whole_text: str
    sweep_texts: tuple[str, ...]  # stream i of a level speaks the i-th (different texts)
    narration: bool

    @classmethod
    def for_run(cls, quick: bool) -> Plan:
        if quick:
            return cls({"sentence": prompts.SENTENCES[:1], "short": prompts.SMART_HOME[:1]},
                       1, 1, prompts.SMART_HOME[-1], prompts.SMART_HOME[2],
                       prompts.SMART_HOME[::-1], False)
        return cls({"sentence": prompts.SENTENCES, "short": prompts.SMART_HOME}, 2, 3,
                   prompts.PARAGRAPH, prompts.PARAGRAPH, prompts.different_texts(max(LEVELS)),
                   True)


def pick_backends(adapters: list[dict[str, Any]], wanted: list[str] | None
                  ) -> tuple[list[str], list[dict[str, str]]]:
    rows = {a["name"]: a for a in adapters}
    names = wanted or [n for n, a in rows.items() if n != "synthetic"]
    chosen, skipped = [], []
    for name in names:
        row = rows.get(name)
        if row is None:
            skipped.append({"backend": name, "reason": "unknown backend"})
        elif not row.get("enabled", True):
            skipped.append({"backend": name, "reason": "not enabled (BACKENDS)"})
        elif not row.get("ready"):
            skipped.append({"backend": name, "reason": row.get("reason") or "not ready"})
        else:
            chosen.append(name)
    return chosen, skipped


def first_segment_of(config: dict[str, Any]) -> Any:
    """`segment(backend, text)`: the server's first segment of a text for that backend (what
    it synthesizes before first audio; the rate profile's first size: FIRST_SEGMENT_CHARS, or
    a whole sentence for an engine that asks for whole sentences)."""
    chars = int(config.get("first_segment_chars") or 48)
    most = int(config.get("max_segment_chars") or 400)

    def segment(backend: str, text: str) -> str:
        limit = chars
        if registry.load_class(backend).capabilities.whole_sentences:
            limit = max(chars, min(SENTENCE_CHARS, most))
        chunker = Chunker()
        chunker.push_text(text)
        chunker.end_input()
        return chunker.pop(limit) or text

    return segment


def _voice_path(config: dict[str, Any]) -> Path | None:
    return Path(config["piper_voice"]) if config.get("piper_voice") else bundled_voice_path()


def run(ctx: PartContext) -> dict[str, Any]:
    return ctx.run_async(measure(ctx.opts, ctx.out))


async def measure(opts: Options, out: Path) -> dict[str, Any]:
    plan = Plan.for_run(opts.quick)
    levels = opts.concurrency or (QUICK_LEVELS if opts.quick else LEVELS)
    doc: dict[str, Any] = {
        "prompts": {"sentences_chars": [len(t) for t in prompts.SENTENCES],
                    "smart_home_chars": [len(t) for t in prompts.SMART_HOME],
                    "paragraph_chars": len(prompts.PARAGRAPH),
                    "narration_chars": len(prompts.NARRATION)},
        "plan": {"repeats": plan.repeats, "whole_runs": plan.whole_runs,
                 "whole_text_chars": len(plan.whole_text),
                 "paced_whole_text_chars": len(plan.paced_whole_text),
                 "sweep_text_chars": round(sum(map(len, plan.sweep_texts))
                                           / len(plan.sweep_texts)),
                 "sweep_texts": len(plan.sweep_texts), "levels": list(levels),
                 "narration": plan.narration},
        "skipped": [],
    }
    async with AsyncExitStack() as stack:
        auth = {"Authorization": f"Bearer {opts.api_key}"} if opts.api_key else None
        http = await stack.enter_async_context(
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None), headers=auth))
        early: tuple[Path | None, Any] = (None, None)  # peers started beside the server
        if opts.url:
            srv = Morpheus(opts.url.rstrip("/"), opts.server_pid, False)
        else:
            env = {"PARALLEL_STREAMS": str(max(levels)), **opts.server_env}
            voice = _voice_path({"piper_voice": env.get("PIPER_VOICE",
                                                         os.environ.get("PIPER_VOICE"))})
            if opts.peers and voice is not None and "piper" in (opts.backends or ["piper"]):
                srv, peer_start = await asyncio.gather(start_morpheus(stack, out, env),
                                                    start_peers(stack, http, voice, out))
                early = (voice, peer_start)
            else:
                srv = await start_morpheus(stack, out, env)
        await describe(http, srv)
        phase(f"Morpheus at {srv.url}")
        buffer_ms = float(srv.config.get("playback_buffer_ms") or 300)
        doc["server"] = {"url": srv.url, "started_by_bench": srv.started_here, "pid": srv.pid,
                         "env": srv.env, "wyoming": srv.wyoming is not None,
                         "config": {k: srv.config.get(k) for k in (
                             "tts_backend", "parallel_streams", "queue_max",
                             "playback_buffer_ms", "first_segment_chars", "max_segment_chars",
                             "piper_intra_op_threads", "piper_workers", "ws_max_lead_ms")}}
        doc["playback_buffer_ms"] = buffer_ms
        active = srv.config.get("tts_backend")
        backends, doc["skipped"] = pick_backends(srv.adapters, opts.backends)

        per_backend: dict[str, list[Subject]] = {}
        raw: dict[str, Subject] = {}
        alone: dict[str, Subject] = {}
        for b in backends:
            per_backend[b] = srv.subjects(http, b)
            engine = raw_engine(b, srv.config)
            if engine is not None:
                raw[b] = engine
                stack.push_async_callback(engine.close)
            adapter = adapter_alone(b, srv.config)
            if adapter is not None:
                alone[b] = adapter
        peers: list[Peer] = []
        voice = _voice_path(srv.config)
        if opts.peers and "piper" in backends and voice is not None:
            if early[0] == voice:
                peers, skipped = early[1]
            else:  # the server's voice is not the one guessed from the environment
                peers, skipped = await start_peers(stack, http, voice, out)
            doc["skipped"] += skipped

        subjects: list[Subject] = []
        for b in backends:
            subjects += per_backend[b] + [x[b] for x in (raw, alone) if b in x]
        subjects += [p.subject for p in peers]
        for s in subjects:
            await s.open()
            stack.push_async_callback(s.close)
        tallies = [Tally(s) for s in subjects]
        phase("warm-up")
        for t in tallies:  # warm-up: loads, first-run allocations, connections
            t.note(await speak(t.subject, prompts.SMART_HOME[1], first_audio_only=t.subject.paced))

        phase(f"first audio: {len(subjects)} subjects")
        await first_audio_phase(tallies, plan.first_audio_prompts, plan.repeats,
                                first_segment_of(srv.config))
        phase("whole streams")
        await whole_stream_phase(
            tallies, lambda s: plan.paced_whole_text if s.paced else plan.whole_text,
            lambda s: 1 if s.paced else plan.whole_runs, http, srv.url)
        by_name = {t.subject.name: figures(t, buffer_ms) for t in tallies}

        sweepers = [per_backend[b][0] for b in backends] + [p.subject for p in peers]
        rows: dict[str, list[dict[str, Any]]] = {s.name: [] for s in sweepers}
        for n in levels:  # level by level, so that load drift spreads over every subject
            phase(f"concurrency: {n} stream{'s' if n > 1 else ''} at once")
            for s in sweepers:
                if n <= SWEEP_MAX.get(s.backend, n):
                    rows[s.name] += await sweep(s, [n], plan.sweep_texts, http, srv.url,
                                                buffer_ms)
        doc["concurrency"] = [r for s in sweepers for r in rows[s.name]]

        narrations: dict[str, dict[str, Any]] = {}
        if plan.narration:
            for b in backends:
                for s in per_backend[b]:
                    if s.transport in opts.narration_transports:
                        phase(f"narration: {s.name}")
                        narrations.setdefault(b, {})[s.transport] = await narration(
                            s, prompts.NARRATION, http, srv.url, buffer_ms)

        doc["backends"] = [{
            "backend": b,
            "transports": {s.transport: by_name[s.name] for s in per_backend[b]},
            "raw": by_name[raw[b].name] if b in raw else None,
            "raw_engine": _raw_note(raw.get(b)),
            "adapter": by_name[alone[b].name] if b in alone else None,
            "overhead_ms": _overhead(by_name, per_backend[b], alone.get(b)),
            "narration": narrations.get(b, {}),
        } for b in backends]
        doc["peers"] = [{"name": p.subject.name, "version": p.version,
                         "command": command_line(p.command), **by_name[p.subject.name]}
                        for p in peers]
        if srv.wyoming is not None and active:
            await set_active_backend(http, srv.url, active)
        if srv.pid is not None:
            doc["server"]["peak_rss_mb_lifetime"] = rss_mb(srv.pid, "VmHWM")
    return doc


def _overhead(by_name: dict[str, dict[str, Any]], subjects: list[Subject],
              alone: Subject | None) -> dict[str, float | None] | None:
    """Server first audio over HTTP minus its adapter's first chunk alone, on the same
    segments (p50s), for the ~120-character sentences and the smart-home answers."""
    http = next((s for s in subjects if s.transport == "http"), None)
    if alone is None or http is None:
        return None
    server, engine = by_name[http.name], by_name[alone.name]
    out: dict[str, float | None] = {}
    for kind, first, segment in (("sentence", "first_audio_ms", "first_segment_ms"),
                                 ("short", "first_audio_short_ms", "first_segment_short_ms")):
        a = (server.get(first) or {}).get("p50")
        b = (engine.get(segment) or {}).get("p50")
        out[kind] = None if a is None or b is None else a - b
    return out


def _raw_note(engine: Subject | None) -> dict[str, Any] | None:
    if engine is None:
        return None
    note: dict[str, Any] = {"name": engine.name}
    for attr in ("threads", "voice_name", "argv"):
        if hasattr(engine, attr):
            note[attr] = getattr(engine, attr)
    return note


__all__ = ["LEVELS", "QUICK_LEVELS", "Plan", "pick_backends", "run"]
