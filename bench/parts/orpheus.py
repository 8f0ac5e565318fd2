"""Orpheus at scale: N concurrent streams through the HTTP API, tokens paced at 1.3x real time.

Two child processes, both on 127.0.0.1 and ended by PID: an Orpheus-like llama.cpp-protocol
server (`tests/llama_protocol_server.py`: as many frames as the text takes to speak, one token
per SSE event at `realtime` x real time) and `morpheus serve` with the real SNAC 24 kHz network
(seeded random weights: the same cost as the real checkpoint). This process is the listeners:
each reads its stream as it arrives and plays it from 500 ms after its first audio, so an
underflow is a moment the player had nothing to play.

Reported per concurrency: first audio p50/max, underflows and stalled seconds over all streams,
the slowest stream's RTF (audio seconds / wall seconds from its request), the server's CPU
seconds per audio second, and the decoder worker's figures from /metrics.

Part `orpheus`; knobs: `--set orpheus.streams=1,2,4,8`, `--set orpheus.decoders=onnx,torch`,
`--set orpheus.repeats=1`, `--set orpheus.onnx=FILE` (an export; else exported for the run);
server settings with `--server-env KEY=VALUE` (e.g. SNAC_WINDOW_FRAMES=8).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.procs import REPO, cpu_seconds, free_port, http_ready, python_module
from bench.record import pct
from bench.servers import Morpheus, start_child, start_morpheus
from bench.suite import PartContext

PARAGRAPH = ("The lighthouse keeper climbed the stairs at dusk, as he had every evening for "
             "thirty years, and wound the great lamp until it turned.")  # ~9 s of speech
START_DELAY_S = 0.5  # the listener starts playing this long after its first audio
REALTIME = 1.3  # token pace, x real time
BYTES_PER_S = 48_000


@dataclass
class Listen:
    """One listener's view of its stream: when each piece of audio arrived."""

    started: float
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (time, bytes)
    status: int = 0

    @property
    def audio_s(self) -> float:
        return sum(n for _, n in self.arrivals) / BYTES_PER_S

    @property
    def first_audio_ms(self) -> float:
        return 1000 * (self.arrivals[0][0] - self.started) if self.arrivals else float("nan")

    @property
    def rtf(self) -> float:
        if not self.arrivals:
            return 0.0
        return self.audio_s / (self.arrivals[-1][0] - self.started)

    def underflows(self, delay_s: float = START_DELAY_S) -> tuple[int, float]:
        """(times the player ran dry, seconds it waited) for a player that starts `delay_s`
        after the first audio and plays in real time, resuming as soon as audio arrives."""
        if not self.arrivals:
            return 0, 0.0
        clock = self.arrivals[0][0] + delay_s  # wall time at which the buffered audio ends
        count, stalled = 0, 0.0
        for t, n in self.arrivals:
            if t > clock:  # nothing left to play when this piece arrived
                if t - clock > 0.001:
                    count += 1
                    stalled += t - clock
                clock = t
            clock += n / BYTES_PER_S
        return count, stalled


async def listen(http: aiohttp.ClientSession, url: str, text: str, voice: str) -> Listen:
    out = Listen(started=time.perf_counter())
    try:
        async with http.post(url + "/v1/audio/speech", json={
                "input": text, "voice": voice, "response_format": "pcm"}) as r:
            out.status = r.status
            async for chunk in r.content.iter_any():
                if chunk:
                    out.arrivals.append((time.perf_counter(), len(chunk)))
    except aiohttp.ClientPayloadError:
        out.status = -1  # the server ended the stream early (it failed after the headers)
    return out


async def start_token_server(stack: AsyncExitStack, out: Path, realtime: float) -> str:
    """The Orpheus-like llama.cpp-protocol server in a child process; its completions URL."""
    port = free_port()
    await start_child(stack, out, "token-server", python_module(
        "tests.llama_protocol_server", "--port", str(port), "--realtime", str(realtime)),
        lambda: http_ready(f"http://127.0.0.1:{port}/health"))
    return f"http://127.0.0.1:{port}/v1/completions"


def load_average() -> float:
    return os.getloadavg()[0]


async def one_level(http: aiohttp.ClientSession, srv: Morpheus, n: int) -> dict[str, Any]:
    voices = ("tara", "leo", "mia", "dan", "zoe", "zac", "jess", "leah")
    assert srv.pid is not None
    cpu0, load0 = cpu_seconds(srv.pid), load_average()
    before = await snac_metrics(http, srv.url)
    t0 = time.perf_counter()
    runs = await asyncio.gather(*(listen(http, srv.url, f"{PARAGRAPH} ({i})", voices[i % 8])
                                  for i in range(n)))
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(srv.pid) - cpu0
    decoder = _decoder_delta(before, await snac_metrics(http, srv.url), wall)
    bad = [r.status for r in runs if r.status != 200]
    firsts = [r.first_audio_ms for r in runs if r.arrivals]
    under = [r.underflows() for r in runs]
    audio = sum(r.audio_s for r in runs)
    return {
        "streams": n, "failed": len(bad),
        "first_audio_p50_ms": pct(firsts, 50),
        "first_audio_max_ms": max(firsts, default=None),
        "underflows": sum(c for c, _ in under),
        "stalled_s": round(sum(s for _, s in under), 2),
        "rtf_min": round(min(r.rtf for r in runs), 3),
        "audio_s": round(audio, 2),
        "server_cpu_s_per_audio_s": round(cpu / audio, 3) if audio else None,
        "load_1min": round((load0 + load_average()) / 2, 2),
        **decoder,
    }


def _decoder_delta(before: dict[str, float], after: dict[str, float],
                   wall_s: float) -> dict[str, float]:
    """What the decoder worker did during one level: frames decoded per frame of new audio
    (1 = no context), frames per window, decode ms per new frame, share of the wall time it
    was decoding."""
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    new = d.get("tts_snac_frames_new_total", 0.0)
    windows = d.get("tts_snac_windows_total", 0.0)
    if not new or not windows:
        return {}
    return {
        "decoded_per_new_frame": round(d["tts_snac_frames_decoded_total"] / new, 2),
        "frames_per_window": round(d["tts_snac_frames_decoded_total"] / windows, 2),
        "decode_ms_per_new_frame": round(1000 * d["tts_snac_decode_seconds_total"] / new, 1),
        "decoder_busy_share": round(d["tts_snac_decode_seconds_total"] / wall_s, 2),
    }


async def measure(levels: tuple[int, ...], *, decoder: str, repeats: int, model_dir: Path,
                  onnx_path: Path | None, env: dict[str, str], out: Path) -> dict[str, Any]:
    server_env = {"TTS_BACKEND": "snac_llamacpp", "BACKENDS": "snac_llamacpp",
                  "FALLBACK_BACKEND": "", "SNAC_MODEL": str(model_dir), "SNAC_DEVICE": "cpu",
                  "PARALLEL_STREAMS": str(max(levels)), "LOG_LEVEL": "WARNING", **env}
    if decoder == "onnx":
        assert onnx_path is not None
        server_env["SNAC_ONNX"] = str(onnx_path)
    result: dict[str, Any] = {"decoder": decoder, "levels": {}}
    async with AsyncExitStack() as stack:
        server_env["SNAC_URL"] = await start_token_server(stack, out, REALTIME)
        srv = await start_morpheus(stack, out, server_env, name=f"morpheus-{decoder}")
        http = await stack.enter_async_context(aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=600)))
        await listen(http, srv.url, "Warm up.", "tara")
        for n in levels:
            results = [await one_level(http, srv, n) for _ in range(repeats)]
            result["levels"][str(n)] = _median_of(results)
        result["metrics"] = await snac_metrics(http, srv.url)
    return result


def _median_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    if len(results) == 1:
        return results[0]
    merged: dict[str, Any] = {"runs": results}
    for key, value in results[0].items():
        if isinstance(value, (int, float)) and value is not None:
            merged[key] = round(statistics.median(r[key] for r in results), 3)
    return merged


async def snac_metrics(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """The decoder worker's families (tts_snac_*) from /metrics, summed over label sets."""
    async with http.get(url + "/metrics") as r:
        text = await r.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("tts_snac_") and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def prepare(workdir: Path, onnx_path: Path | None, need_onnx: bool) -> tuple[Path, Path | None]:
    from tests.snac_fixture import write_snac_checkpoint

    model_dir = write_snac_checkpoint(workdir / "snac")
    if need_onnx and onnx_path is None:
        onnx_path = workdir / "snac_decoder.onnx"
        subprocess.run([sys.executable, "-m", "server.cli", "--env-file", "", "snac", "export",
                        "--model", str(model_dir), "--out", str(onnx_path)], check=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True)
    return model_dir, onnx_path


def run(ctx: PartContext) -> dict[str, Any]:
    """Each concurrency level with each decoder ("torch"; "onnx", exported here unless the
    `onnx` knob names an export). Returns one report per decoder."""
    streams = tuple(int(x) for x in (ctx.param("streams") or ("1,2" if ctx.quick else "1,2,4,8"))
                    .split(","))
    decoders = tuple((ctx.param("decoders") or ("onnx" if ctx.quick else "onnx,torch"))
                     .split(","))
    repeats = int(ctx.param("repeats") or 1)
    onnx_path = ctx.param("onnx")
    out: dict[str, Any] = {"realtime": REALTIME, "start_delay_ms": 1000 * START_DELAY_S,
                           "decoders": {}}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, onnx = prepare(Path(tmp), Path(onnx_path) if onnx_path else None,
                                  "onnx" in decoders)
        for decoder in decoders:
            t0 = time.perf_counter()
            report = ctx.run_async(measure(streams, decoder=decoder, repeats=repeats,
                                           model_dir=model_dir, onnx_path=onnx,
                                           env=ctx.opts.server_env, out=ctx.out))
            report["wall_s"] = round(time.perf_counter() - t0, 1)
            out["decoders"][decoder] = report
    return out
