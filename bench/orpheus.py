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

`python -m bench orpheus`, or `python -m bench.orpheus --streams 1,2,4,8 --decoders onnx`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.procs import cpu_seconds, end_process, free_port
from bench.speech import ServerProcess, pct

PARAGRAPH = ("The lighthouse keeper climbed the stairs at dusk, as he had every evening for "
             "thirty years, and wound the great lamp until it turned.")  # ~9 s of speech
START_DELAY_S = 0.5  # the listener starts playing this long after its first audio
REALTIME = 1.3  # token pace, x real time
BYTES_PER_S = 48_000
REPO = str(Path(__file__).resolve().parents[1])


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


class TokenServer:
    """The Orpheus-like llama.cpp-protocol server in a child process."""

    def __init__(self, realtime: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1/completions"
        self.realtime = realtime
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> TokenServer:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.llama_protocol_server", "--port", str(self.port),
            "--realtime", str(self.realtime), env={**os.environ, "PYTHONPATH": REPO},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/health") as r:
                        if r.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("token server did not start")

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        await end_process(self.proc)


def load_average() -> float:
    return os.getloadavg()[0]


async def one_level(http: aiohttp.ClientSession, srv: ServerProcess, n: int) -> dict[str, Any]:
    voices = ("tara", "leo", "mia", "dan", "zoe", "zac", "jess", "leah")
    assert srv.proc is not None
    cpu0, load0 = cpu_seconds(srv.proc.pid), load_average()
    before = await snac_metrics(http, srv.url)
    t0 = time.perf_counter()
    runs = await asyncio.gather(*(listen(http, srv.url, f"{PARAGRAPH} ({i})", voices[i % 8])
                                  for i in range(n)))
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(srv.proc.pid) - cpu0
    decoder = _decoder_delta(before, await snac_metrics(http, srv.url), wall)
    bad = [r.status for r in runs if r.status != 200]
    under = [r.underflows() for r in runs]
    audio = sum(r.audio_s for r in runs)
    return {
        "streams": n, "failed": len(bad),
        "first_audio_p50_ms": round(pct([r.first_audio_ms for r in runs], 50), 1),
        "first_audio_max_ms": round(max(r.first_audio_ms for r in runs), 1),
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
                  onnx_path: Path | None, env: dict[str, str]) -> dict[str, Any]:
    server_env = {"TTS_BACKEND": "snac_llamacpp", "BACKENDS": "snac_llamacpp",
                  "FALLBACK_BACKEND": "", "SNAC_MODEL": str(model_dir), "SNAC_DEVICE": "cpu",
                  "PARALLEL_STREAMS": str(max(levels)), "LOG_LEVEL": "WARNING", **env}
    if decoder == "onnx":
        assert onnx_path is not None
        server_env["SNAC_ONNX"] = str(onnx_path)
    out: dict[str, Any] = {"decoder": decoder, "levels": {}}
    async with TokenServer(REALTIME) as tokens:
        server_env["SNAC_URL"] = tokens.url
        async with ServerProcess(**server_env) as srv, aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=600)) as http:
            await listen(http, srv.url, "Warm up.", "tara")
            for n in levels:
                results = [await one_level(http, srv, n) for _ in range(repeats)]
                out["levels"][str(n)] = _median_of(results)
            out["metrics"] = await snac_metrics(http, srv.url)
    return out


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
                       env={**os.environ, "PYTHONPATH": REPO}, capture_output=True)
    return model_dir, onnx_path


def run(streams: tuple[int, ...] = (1, 2, 4, 8), *, decoders: tuple[str, ...] = ("onnx", "torch"),
        repeats: int = 1, onnx_path: str | None = None,
        env: dict[str, str] | None = None) -> dict[str, Any]:
    """Measure each concurrency level with each decoder ("torch"; "onnx", exported here unless
    `onnx_path` names an export); `env` adds server settings. Returns one report per decoder."""
    out: dict[str, Any] = {"realtime": REALTIME, "start_delay_ms": 1000 * START_DELAY_S,
                           "decoders": {}}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, onnx = prepare(Path(tmp), Path(onnx_path) if onnx_path else None,
                                  "onnx" in decoders)
        for decoder in decoders:
            t0 = time.perf_counter()
            report = asyncio.run(measure(tuple(streams), decoder=decoder, repeats=repeats,
                                         model_dir=model_dir, onnx_path=onnx, env=env or {}))
            report["wall_s"] = round(time.perf_counter() - t0, 1)
            out["decoders"][decoder] = report
            _print(report)
    return out


def _print(report: dict[str, Any]) -> None:
    print(f"Orpheus over HTTP, SNAC decoder: {report['decoder']}; tokens at {REALTIME}x real "
          f"time; listeners play from {1000 * START_DELAY_S:.0f} ms after their first audio")
    print("  streams failed  first audio p50/max ms  underflows stalled s  slowest RTF  "
          "CPU s/audio s  decoded/new  frames/window  decode ms/new  busy  load")
    for n, r in report["levels"].items():
        print(f"  {n:>7} {r['failed']:>6}  {r['first_audio_p50_ms']:>9.0f} / "
              f"{r['first_audio_max_ms']:<9.0f}  {r['underflows']:>10} {r['stalled_s']:>9.2f}"
              f"  {r['rtf_min']:>11.2f}  {r['server_cpu_s_per_audio_s']!s:>13}  "
              f"{r.get('decoded_per_new_frame', '-')!s:>11}  "
              f"{r.get('frames_per_window', '-')!s:>13}  "
              f"{r.get('decode_ms_per_new_frame', '-')!s:>13}  "
              f"{r.get('decoder_busy_share', '-')!s:>4}  {r['load_1min']}")


def main() -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="1,2,4,8")
    parser.add_argument("--decoders", default="onnx,torch", help="onnx, torch or both")
    parser.add_argument("--onnx", help="an exported decoder (else exported for the run)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a server setting, e.g. --set SNAC_WINDOW_NEW_FRAMES=3")
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.set)
    report = run(tuple(int(s) for s in args.streams.split(",")),
                 decoders=tuple(args.decoders.split(",")), repeats=args.repeats,
                 onnx_path=args.onnx, env=env)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
