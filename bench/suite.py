"""The benchmark: its parts, and the run that strings the chosen ones into one bench.json.

A part measures one thing and returns its figures as a JSON object; `run(Options)` runs the
chosen parts in order, each in its own folder under OUT, and returns the document: the machine,
date, command and load, then `parts: {name: figures}`. A part that fails is recorded with its
error and the others still run. The targets of every part are judged afterwards from this
document (bench/targets.py), so a part never judges itself.

| part | what it measures |
|---|---|
| transports | every ready backend over HTTP, WebSocket, WebRTC and Wyoming against the raw engine, the adapter alone and the peers; the concurrency sweep; the 5-minute narration |
| orchestrator | the synthetic engine on a virtual clock: underflows over a narration, delivery jitter |
| realtime | WebRTC connect, pacing, barge-in, CPU per stream; WebSocket vs HTTP first audio |
| loose_bounds | the real figures behind the wall-clock bounds the tests keep loose |
| wyoming | the Wyoming face against wyoming-piper, plain and in Home Assistant's streaming sequence |
| network | network and command backends through Morpheus against their upstream alone |
| elevenlabs | the ElevenLabs routes against /v1/audio/speech; the elevenlabs adapter's overhead |
| snac | SNAC decode cost and quality by window scheme, decoder and batch |
| orpheus | concurrent Orpheus streams (llama.cpp protocol + real SNAC network) over HTTP |
| soak | the chaos soak: mixed traffic at ~70% of the sweep's capacity while faults are injected |
| capacity | conversational agents held (p95 first audio <= 250 ms, 0 underflows, 3 min): Morpheus and the peers |
| batching | what one batched run of several Piper streams' steps saves per item, by part and batch size |
| memory | RSS of the serving process after one request, idle and at peak, beside Piper's HTTP server and wyoming-piper with the same voice |
| kokoro | Kokoro's WER through Morpheus against kokoro-onnx alone on the same texts (its speed is in transports) |
| text | the text front end's cost per segment and per delta; first audio with and without it (HTTP, WebSocket 3-character deltas) |
"""

from __future__ import annotations

import asyncio
import importlib
import signal
import sys
import time
import traceback
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.procs import load_average, machine

PARTS: dict[str, str] = {  # name -> module with `run(PartContext) -> dict` (imported to run)
    "transports": "bench.parts.transports",
    "orchestrator": "bench.parts.orchestrator",
    "realtime": "bench.parts.realtime",
    "loose_bounds": "bench.parts.loose_bounds",
    "wyoming": "bench.parts.wyoming",
    "network": "bench.parts.network",
    "elevenlabs": "bench.parts.elevenlabs",
    "snac": "bench.parts.snac",
    "orpheus": "bench.parts.orpheus",
    "soak": "bench.parts.soak",
    "batching": "bench.parts.batching",
    "capacity": "bench.parts.capacity",
    "text": "bench.parts.text",
    "kokoro": "bench.parts.kokoro",
    "memory": "bench.parts.memory",
}
QUICK_PARTS = ("transports",)  # `--quick` alone: the harness check `make test` runs

T = TypeVar("T")


@dataclass
class Options:
    out: Path
    parts: tuple[str, ...] = tuple(PARTS)
    quick: bool = False
    # transports
    url: str | None = None  # measure this server instead of starting one
    server_pid: int | None = None  # its PID, for RSS and CPU (only with --url)
    backends: list[str] | None = None  # None: every ready backend but the synthetic one
    concurrency: tuple[int, ...] | None = None
    peers: bool = True
    narration_transports: tuple[str, ...] = ("http", "ws")
    # every server a part starts gets these settings on top of its own
    server_env: dict[str, str] = field(default_factory=dict)
    api_key: str | None = None  # sent as `Authorization: Bearer` when the server wants one
    # soak
    soak_s: float | None = None  # None: the part's default (10 minutes; --quick: 30 s)
    soak_streams: int | None = None  # None: 70% of the sweep's capacity
    # any part's own knobs: {"part.key": value} or {"key": value} for every part
    params: dict[str, str] = field(default_factory=dict)
    argv: list[str] = field(default_factory=lambda: list(sys.argv))
    render: Path | None = None  # re-render this bench.json instead of measuring
    image_prefix: str = ""


@dataclass
class PartContext:
    """What a part gets: the options, its own folder, and the document so far."""

    name: str
    opts: Options
    out: Path
    doc: dict[str, Any]

    @property
    def quick(self) -> bool:
        return self.opts.quick

    def param(self, key: str, default: str | None = None) -> str | None:
        """`--set PART.KEY=VALUE` (or `--set KEY=VALUE` for every part)."""
        return self.opts.params.get(f"{self.name}.{key}", self.opts.params.get(key, default))

    def trials(self, full: int, quick: int) -> int:
        value = self.param("trials")
        return int(value) if value else (quick if self.quick else full)

    def run_async(self, coro: Coroutine[Any, Any, T]) -> T:
        return run_async(coro)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, with SIGTERM cancelling the coroutine: every process a part started is
    ended by its exit stack on the way out."""

    async def main() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await coro
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, interrupt)

    return asyncio.run(main())


def interrupt(signum: int, frame: Any) -> None:
    """SIGTERM between asyncio runs (a part that computes in this thread): unwind."""
    raise KeyboardInterrupt(f"signal {signum}")


def header(opts: Options) -> dict[str, Any]:
    return {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "command": command_line(opts.argv), "quick": opts.quick,
            "load": {"before": load_average()}, "parts_run": list(opts.parts), "parts": {}}


def run(opts: Options) -> dict[str, Any]:
    from bench.targets import capacity

    signal.signal(signal.SIGTERM, interrupt)
    opts.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    doc = header(opts)
    for name in opts.parts:
        phase(f"=== part: {name} ===")
        ctx = PartContext(name, opts, opts.out / name, doc)
        ctx.out.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        try:
            figures = importlib.import_module(PARTS[name]).run(ctx)
        except Exception as e:  # one broken part must not hide the others' figures
            traceback.print_exc()
            figures = {"error": f"{type(e).__name__}: {e}"}
        figures["duration_s"] = round(time.monotonic() - t0, 1)
        doc["parts"][name] = figures
        if name == "transports":
            doc["capacity"] = capacity(doc)  # a later part (the soak) sizes its load by it
    doc["load"]["after"] = load_average()
    doc["duration_s"] = round(time.time() - started, 1)
    return doc


def phase(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", flush=True)


def command_line(argv: list[str]) -> str:
    """A command as a reader would type it: `python ...`, the venv path shortened."""
    words = ["python", *argv[1:]] if argv and argv[0] == sys.executable else list(argv)
    if words and words[0].endswith(".py"):
        words.insert(0, "python")
    return " ".join(words).replace(sys.prefix, "$VIRTUAL_ENV")


__all__ = ["PARTS", "QUICK_PARTS", "Options", "PartContext", "command_line", "header", "phase", "run",
           "run_async"]
