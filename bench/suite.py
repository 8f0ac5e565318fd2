"""The whole benchmark run: start what is needed, run the phases, return every figure as JSON.

`run(Options)` measures every ready backend over every transport Morpheus has, the raw engine
and the installed peers in the same run, and returns the `bench.json` document (machine, date,
command, one object per backend, one per concurrency level with its `streams` count).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

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
from bench.procs import load_average, machine, rss_mb
from bench.raw import raw_engine
from bench.servers import (
    Morpheus,
    Peer,
    describe,
    set_active_backend,
    start_morpheus,
    start_peers,
)

LEVELS = (1, 2, 4, 8, 16)
QUICK_LEVELS = (1, 2)


@dataclass
class Options:
    out: Path
    url: str | None = None  # measure this server instead of starting one
    server_pid: int | None = None  # its PID, for RSS and CPU (only with --url)
    backends: list[str] | None = None  # None: every ready backend but the synthetic one
    concurrency: tuple[int, ...] | None = None
    quick: bool = False
    peers: bool = True
    narration_transports: tuple[str, ...] = ("http", "ws")
    server_env: dict[str, str] = field(default_factory=dict)
    argv: list[str] = field(default_factory=lambda: list(sys.argv))
    api_key: str | None = None  # sent as `Authorization: Bearer` when the server wants one
    render: Path | None = None  # re-render this bench.json instead of measuring
    image_prefix: str = ""


@dataclass(frozen=True)
class Plan:
    """What a run speaks, and how often: the full benchmark or `--quick`."""

    first_audio_prompts: dict[str, tuple[str, ...]]
    repeats: int
    whole_runs: int  # whole streams per unpaced subject (paced subjects: one)
    whole_text: str
    paced_whole_text: str
    sweep_text: str
    narration: bool

    @classmethod
    def for_run(cls, quick: bool) -> Plan:
        if quick:
            return cls({"sentence": prompts.SENTENCES[:1], "short": prompts.SMART_HOME[:1]},
                       1, 1, prompts.SMART_HOME[-1], prompts.SMART_HOME[2], prompts.SMART_HOME[-1],
                       False)
        return cls({"sentence": prompts.SENTENCES, "short": prompts.SMART_HOME}, 2, 3,
                   prompts.PARAGRAPH, prompts.PARAGRAPH, prompts.PARAGRAPH, True)


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
    """The server's first segment of a text (what it synthesizes before first audio)."""
    from dsp.chunker import Chunker

    limit = int(config.get("first_segment_chars") or 48)

    def segment(text: str) -> str:
        chunker = Chunker()
        chunker.push_text(text)
        chunker.end_input()
        return chunker.pop(limit) or text

    return segment


def _voice_path(config: dict[str, Any]) -> Path | None:
    from adapters.piper.adapter import bundled_voice_path

    return Path(config["piper_voice"]) if config.get("piper_voice") else bundled_voice_path()


def _command(argv: list[str]) -> str:
    """A command as a reader would type it: `python ...`, the venv path shortened."""
    words = ["python", *argv[1:]] if argv and argv[0] == sys.executable else list(argv)
    if words and words[0].endswith(".py"):
        words.insert(0, "python")
    return " ".join(words).replace(sys.prefix, "$VIRTUAL_ENV")


async def run(opts: Options) -> dict[str, Any]:
    plan = Plan.for_run(opts.quick)
    levels = opts.concurrency or (QUICK_LEVELS if opts.quick else LEVELS)
    opts.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    doc: dict[str, Any] = {
        "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": _command(opts.argv), "quick": opts.quick,
        "load": {"before": load_average()},
        "prompts": {"sentences_chars": [len(t) for t in prompts.SENTENCES],
                    "smart_home_chars": [len(t) for t in prompts.SMART_HOME],
                    "paragraph_chars": len(prompts.PARAGRAPH),
                    "narration_chars": len(prompts.NARRATION)},
        "plan": {"repeats": plan.repeats, "whole_runs": plan.whole_runs,
                 "whole_text_chars": len(plan.whole_text),
                 "paced_whole_text_chars": len(plan.paced_whole_text),
                 "sweep_text_chars": len(plan.sweep_text), "levels": list(levels),
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
                srv, peer_start = await asyncio.gather(start_morpheus(stack, opts.out, env),
                                                    start_peers(stack, http, voice, opts.out))
                early = (voice, peer_start)
            else:
                srv = await start_morpheus(stack, opts.out, env)
        await describe(http, srv)
        _phase(f"Morpheus at {srv.url}")
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
        for b in backends:
            per_backend[b] = srv.subjects(http, b)
            engine = raw_engine(b, srv.config)
            if engine is not None:
                raw[b] = engine
                stack.push_async_callback(engine.close)
        peers: list[Peer] = []
        voice = _voice_path(srv.config)
        if opts.peers and "piper" in backends and voice is not None:
            if early[0] == voice:
                peers, skipped = early[1]
            else:  # the server's voice is not the one guessed from the environment
                peers, skipped = await start_peers(stack, http, voice, opts.out)
            doc["skipped"] += skipped

        subjects: list[Subject] = []
        for b in backends:
            subjects += per_backend[b] + ([raw[b]] if b in raw else [])
        subjects += [p.subject for p in peers]
        for s in subjects:
            await s.open()
            stack.push_async_callback(s.close)
        tallies = [Tally(s) for s in subjects]
        _phase("warm-up")
        for t in tallies:  # warm-up: loads, first-run allocations, connections
            t.note(await speak(t.subject, prompts.SMART_HOME[1], first_audio_only=t.subject.paced))

        _phase(f"first audio: {len(subjects)} subjects")
        await first_audio_phase(tallies, plan.first_audio_prompts, plan.repeats,
                                first_segment_of(srv.config))
        _phase("whole streams")
        await whole_stream_phase(
            tallies, lambda s: plan.paced_whole_text if s.paced else plan.whole_text,
            lambda s: 1 if s.paced else plan.whole_runs, http, srv.url)
        by_name = {t.subject.name: figures(t, buffer_ms) for t in tallies}

        sweepers = [per_backend[b][0] for b in backends] + [p.subject for p in peers]
        rows: dict[str, list[dict[str, Any]]] = {s.name: [] for s in sweepers}
        for n in levels:  # level by level, so that load drift spreads over every subject
            _phase(f"concurrency: {n} stream{'s' if n > 1 else ''} at once")
            for s in sweepers:
                rows[s.name] += await sweep(s, [n], plan.sweep_text, http, srv.url, buffer_ms)
        doc["concurrency"] = [r for s in sweepers for r in rows[s.name]]

        narrations: dict[str, dict[str, Any]] = {}
        if plan.narration:
            for b in backends:
                for s in per_backend[b]:
                    if s.transport in opts.narration_transports:
                        _phase(f"narration: {s.name}")
                        narrations.setdefault(b, {})[s.transport] = await narration(
                            s, prompts.NARRATION, http, srv.url, buffer_ms)

        doc["backends"] = [{
            "backend": b,
            "transports": {s.transport: by_name[s.name] for s in per_backend[b]},
            "raw": by_name[raw[b].name] if b in raw else None,
            "raw_engine": _raw_note(raw.get(b)),
            "narration": narrations.get(b, {}),
        } for b in backends]
        doc["peers"] = [{"name": p.subject.name, "version": p.version,
                         "command": _command(p.command), **by_name[p.subject.name]}
                        for p in peers]
        if srv.wyoming is not None and active:
            await set_active_backend(http, srv.url, active)
        if srv.pid is not None:
            doc["server"]["peak_rss_mb_lifetime"] = rss_mb(srv.pid, "VmHWM")
    doc["load"]["after"] = load_average()
    doc["duration_s"] = round(time.time() - started, 1)
    return doc


def _phase(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", flush=True)


def _raw_note(engine: Subject | None) -> dict[str, Any] | None:
    if engine is None:
        return None
    note: dict[str, Any] = {"name": engine.name}
    for attr in ("threads", "voice_name", "argv"):
        if hasattr(engine, attr):
            note[attr] = getattr(engine, attr)
    return note


__all__ = ["LEVELS", "QUICK_LEVELS", "Options", "Plan", "pick_backends", "run"]
