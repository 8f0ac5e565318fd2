"""HTTP speech benchmarks: first audio, overhead and RTF against the raw Piper engine, concurrency.

The server runs as a child process on 127.0.0.1 (as `make serve` runs it); the raw engine is
timed in this process on the same text with the same voice and thread settings, so every
ratio compares figures taken in the same run.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from bench import prompts
from bench.procs import free_port

SENTENCE_120 = ("Hello there! Thanks for calling the Morpheus help line, where every question "
                "gets a clear answer in a friendly, natural voice.")
# The first eight sentences of the benchmark's paragraph (what this section has always timed).
PARAGRAPH = prompts.PARAGRAPH[:prompts.PARAGRAPH.index("hear it sing.") + len("hear it sing.")]
TARGETS = {
    "ttfa_p50_ms": 120.0, "overhead_ms": 10.0, "rtf_ratio": 0.90,
    "low_latency_ttfa_p50_ms": 80.0, "concurrent_ttfa_p95_ms": 300.0, "concurrent_rtf_min": 1.5,
}


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


class ServerProcess:
    """`morpheus serve` in a child process, stopped by its PID."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "TTS_BACKEND": "piper", "PARALLEL_STREAMS": "8", **env}
        self.proc: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> ServerProcess:
        self.proc = subprocess.Popen(  # noqa: ASYNC220 (returns at once; the wait below is async)
            [sys.executable, "-m", "server.cli", "--env-file", "", "serve",
             "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(self.url + "/healthz") as r:
                        if r.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("server did not start")

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def speak(http: aiohttp.ClientSession, url: str, text: str, **fields: Any) -> dict[str, float]:
    """One request read as fast as possible: first audio, total time, audio length."""
    t0 = time.perf_counter()
    first = None
    n = 0
    async with http.post(url + "/v1/audio/speech",
                         json={"input": text, "response_format": "pcm", **fields}) as r:
        r.raise_for_status()
        async for chunk in r.content.iter_any():
            if first is None and chunk:
                first = time.perf_counter() - t0
            n += len(chunk)
    wall = time.perf_counter() - t0
    audio_s = n / 48000
    return {"ttfa_ms": 1000 * (first or wall), "wall_s": wall, "audio_s": audio_s,
            "rtf": audio_s / wall if wall else 0.0}


class RawPiper:
    """The engine alone: the same voice, Piper's whole graph a sentence per run, on the two
    thread settings the adapter uses (`fast`: both cores, `lean`: one)."""

    def __init__(self) -> None:
        from bench.raw import piper_voice

        self.fast, self.lean = piper_voice(2), piper_voice(1)

    @staticmethod
    def _run(voice: Any, phonemes: list[str]) -> int:
        """One sentence through Piper's own API; its length in samples."""
        return int(voice.phoneme_ids_to_audio(voice.phonemes_to_ids(phonemes)).size)

    def time_text(self, text: str, session: str = "fast") -> tuple[float, float]:
        """(wall ms, audio s) to synthesize `text` sentence by sentence, nothing else."""
        voice = getattr(self, session)
        t0 = time.perf_counter()
        samples = sum(self._run(voice, p) for p in voice.phonemize(text) if p)
        return 1000 * (time.perf_counter() - t0), samples / voice.config.sample_rate

    def first_chunk_ms(self, text: str) -> float:
        """Piper's way to its first chunk: phonemize all, run the first sentence whole."""
        t0 = time.perf_counter()
        for phonemes in [p for p in self.fast.phonemize(text) if p][:1]:
            self._run(self.fast, phonemes)
        return 1000 * (time.perf_counter() - t0)


async def bench_piper(trials: int = 20) -> dict[str, float]:
    from dsp.chunker import Chunker
    from server.config import Settings

    settings = Settings()
    raw = RawPiper()
    for _ in range(2):
        raw.time_text(SENTENCE_120)
    first_seg = Chunker()
    first_seg.push_text(SENTENCE_120)
    first_seg.end_input()
    seg = first_seg.pop(settings.first_segment_chars) or SENTENCE_120
    res: dict[str, float] = {}
    async with ServerProcess() as srv, aiohttp.ClientSession() as http:
        for _ in range(3):  # warm the server's sessions
            await speak(http, srv.url, SENTENCE_120)
        ttfa, raw_seg, raw_first, raw_sent = [], [], [], []
        for _ in range(trials):
            ttfa.append((await speak(http, srv.url, SENTENCE_120))["ttfa_ms"])
            raw_seg.append(raw.time_text(seg)[0])
            raw_first.append(raw.first_chunk_ms(seg))
            raw_sent.append(raw.time_text(SENTENCE_120.split("! ")[1])[0])
        low = [(await speak(http, srv.url, SENTENCE_120, low_latency=True))["ttfa_ms"]
               for _ in range(trials)]
        server_rtf, raw_rtf = [], []
        for _ in range(3):
            server_rtf.append((await speak(http, srv.url, PARAGRAPH))["rtf"])
            wall_ms, audio_s = raw.time_text(PARAGRAPH)
            raw_rtf.append(audio_s / (wall_ms / 1000))
        async with http.get(srv.url + "/metrics") as r:
            metrics = await r.text()
        res.update({
            "first_segment_chars": float(len(seg)),
            "ttfa_p50_ms": pct(ttfa, 50), "ttfa_p95_ms": pct(ttfa, 95),
            "raw_first_segment_p50_ms": pct(raw_seg, 50),
            "raw_first_chunk_p50_ms": pct(raw_first, 50),
            "raw_long_sentence_p50_ms": pct(raw_sent, 50),
            "overhead_ms": pct(ttfa, 50) - pct(raw_first, 50),
            "low_latency_ttfa_p50_ms": pct(low, 50), "low_latency_ttfa_p95_ms": pct(low, 95),
            "server_rtf": statistics.median(server_rtf), "raw_rtf": statistics.median(raw_rtf),
            "underflows_total": _metric_sum(metrics, "tts_underflow_count"),
        })
        res["rtf_ratio"] = res["server_rtf"] / res["raw_rtf"]
        for n in (4, 8):
            runs = await asyncio.gather(*(speak(http, srv.url, PARAGRAPH) for _ in range(n)))
            res[f"c{n}_ttfa_p95_ms"] = pct([r["ttfa_ms"] for r in runs], 95)
            res[f"c{n}_rtf_min"] = min(r["rtf"] for r in runs)
        async with http.get(srv.url + "/metrics") as r:
            res["underflows_after_concurrency"] = _metric_sum(await r.text(),
                                                              "tts_underflow_count")
    return res


def _metric_sum(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name))


def report(res: dict[str, float]) -> None:
    rows = [
        ("first audio p50, 120-char sentence (ms)", res["ttfa_p50_ms"], "<= 120"),
        ("first audio p95 (ms)", res["ttfa_p95_ms"], ""),
        ("first segment (chars)", res["first_segment_chars"], ""),
        ("raw Piper: first chunk of that segment p50 (ms)", res["raw_first_chunk_p50_ms"], ""),
        ("raw Piper: the whole first segment p50 (ms)", res["raw_first_segment_p50_ms"], ""),
        ("raw Piper: the 107-char sentence alone p50 (ms)", res["raw_long_sentence_p50_ms"], ""),
        ("server overhead over the engine (ms)", res["overhead_ms"], "<= 10"),
        ("first audio with low_latency p50 (ms)", res["low_latency_ttfa_p50_ms"], "<= 80"),
        ("sustained RTF, server", res["server_rtf"], ""),
        ("sustained RTF, raw engine", res["raw_rtf"], ""),
        ("RTF ratio server/raw", res["rtf_ratio"], ">= 0.90"),
        ("4 streams: first audio p95 (ms)", res["c4_ttfa_p95_ms"], "<= 300"),
        ("4 streams: slowest stream RTF", res["c4_rtf_min"], ">= 1.5"),
        ("8 streams: first audio p95 (ms)", res["c8_ttfa_p95_ms"], "<= 300"),
        ("8 streams: slowest stream RTF", res["c8_rtf_min"], ">= 1.5"),
        ("underflows (server metric, all runs)", res["underflows_after_concurrency"], "0"),
    ]
    for name, value, target in rows:
        print(f"  {name:<48} {value:>9.2f}   {target}")


def run() -> dict[str, float]:
    res = asyncio.run(bench_piper(int(os.environ.get("MORPHEUS_BENCH_TRIALS", "20"))))
    print("Piper over HTTP (server in a child process, raw engine in this one)")
    report(res)
    return res


if __name__ == "__main__":
    out = run()
    Path(os.environ.get("MORPHEUS_BENCH_JSON", "/dev/null")).write_text(json.dumps(out))
