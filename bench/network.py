"""Network backends: first audio and RTF through Morpheus against the upstream asked directly,
in the same run, for openai_tts, xtts (both protocols) and coqui.

Upstreams, each a child process on 127.0.0.1 making real Piper speech and speaking its
protocol byte for byte: `python -m tests.openai_server` (Kokoro-FastAPI's shape) behind
openai_tts, `python -m tests.xtts_server` (streaming-server, then api-server) behind xtts,
`python -m tests.coqui_server` behind coqui. Morpheus runs as a child process with those
backends enabled.

First audio: each round asks the upstream directly, with the request the adapter would send,
then sends the same one-segment sentence through Morpheus (`POST /v1/audio/speech`, pcm,
streamed), back to back; the upstreams replay the speech of a text they made before
(`--cache`), so the engine's own time (and its noise on a busy machine) drops out and the
median paired difference is Morpheus's overhead. RTF: a paragraph (new text every round, so
Piper really runs) read as fast as possible, audio seconds over wall seconds, both ways; the
ratio is the median of each round's pair (the machine's speed drifts between rounds).
Targets: overhead <= 15 ms; RTF through Morpheus >= 0.95 of the upstream's.

`run(rounds=...) -> dict` (scripts/bench.py calls it), or `python -m bench network`.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bench.procs import end_process, free_port
from bench.speech import PARAGRAPH, ServerProcess, speak

TARGETS = {"overhead_ms": 15.0, "rtf_ratio": 0.95}
SHORT = "The weather today is mild and sunny."  # one segment: the same work on both paths
WAV_HEADER_BYTES = 44


class Child:
    """`python -m <module> --port N ...` on 127.0.0.1, ready when `probe` answers; ended by PID."""

    def __init__(self, module: str, *args: str, probe: str = "/") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [sys.executable, "-m", module, "--port", str(self.port), *args]
        self.probe = probe
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Child:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                if self.proc.returncode is not None:
                    raise RuntimeError(f"{' '.join(self.argv)} exited with {self.proc.returncode}")
                try:
                    async with http.get(self.url + self.probe) as r:
                        if r.status < 500:
                            return self
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{' '.join(self.argv)} did not start")

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        await end_process(self.proc)


async def timed_body(resp: aiohttp.ClientResponse, t0: float, skip: int) -> dict[str, float]:
    """First audio (the first byte past `skip` header bytes) and the audio length."""
    first = None
    n = 0
    async for chunk in resp.content.iter_any():
        n += len(chunk)
        if first is None and n > skip:
            first = time.perf_counter() - t0
    wall = time.perf_counter() - t0
    audio_s = max(0, n - skip) / 2 / 24_000
    return {"ttfa_ms": 1000 * (first or wall), "wall_s": wall, "audio_s": audio_s}


Direct = Callable[[aiohttp.ClientSession, str], Awaitable[dict[str, float]]]


def openai_direct(url: str, voice: str) -> Direct:
    async def ask(http: aiohttp.ClientSession, text: str) -> dict[str, float]:
        t0 = time.perf_counter()
        async with http.post(url + "/v1/audio/speech", json={
                "model": "tts-1", "input": text, "voice": voice, "response_format": "pcm",
                "speed": 1.0}) as r:
            r.raise_for_status()
            return await timed_body(r, t0, 0)

    return ask


def xtts_streaming_direct(url: str, latents: dict[str, Any]) -> Direct:
    members = json.dumps(latents)[1:-1]  # serialised once, as the adapter does

    async def ask(http: aiohttp.ClientSession, text: str) -> dict[str, float]:
        body = (f'{{"text": {json.dumps(text)}, "language": "en", "add_wav_header": true, '
                f'"stream_chunk_size": "20", {members}}}').encode()
        t0 = time.perf_counter()
        async with http.post(url + "/tts_stream", data=body,
                             headers={"Content-Type": "application/json"}) as r:
            r.raise_for_status()
            return await timed_body(r, t0, WAV_HEADER_BYTES)

    return ask


def get_direct(url: str, path: str, params: dict[str, str], rate_hz: int = 24_000) -> Direct:
    async def ask(http: aiohttp.ClientSession, text: str) -> dict[str, float]:
        t0 = time.perf_counter()
        async with http.get(url + path, params={"text": text, **params}) as r:
            r.raise_for_status()
            out = await timed_body(r, t0, WAV_HEADER_BYTES)
        out["audio_s"] *= 24_000 / rate_hz
        return out

    return ask


async def compare(http: aiohttp.ClientSession, front: str, backend: str, direct: Direct,
                  upstream: str, rounds: int) -> dict[str, float]:
    """Paired rounds, upstream first then through Morpheus, after one unmeasured of each."""
    await control(http, upstream, cache=True)
    await direct(http, SHORT)
    await speak(http, front, SHORT, backend=backend)
    diffs, ttfa_up, ttfa_mo, rtf_up, rtf_mo, ratios = [], [], [], [], [], []
    for _ in range(rounds):
        up = await direct(http, SHORT)
        mo = await speak(http, front, SHORT, backend=backend)
        diffs.append(mo["ttfa_ms"] - up["ttfa_ms"])
        ttfa_up.append(up["ttfa_ms"])
        ttfa_mo.append(mo["ttfa_ms"])
    await control(http, upstream, cache=False)  # Piper runs for every sentence now
    for i in range(rounds):
        up = await direct(http, f"Take {i} for the upstream. {PARAGRAPH}")
        mo = await speak(http, front, f"Take {i} through Morpheus. {PARAGRAPH}", backend=backend)
        rtf_up.append(up["audio_s"] / up["wall_s"])
        rtf_mo.append(mo["rtf"])
        ratios.append(rtf_mo[-1] / rtf_up[-1])  # paired: both ran within seconds
    med = statistics.median
    return {
        "upstream_ttfa_p50_ms": med(ttfa_up), "morpheus_ttfa_p50_ms": med(ttfa_mo),
        "overhead_ms": med(diffs),
        # best of N on each path: what is left when the machine's other work does not interfere
        "overhead_best_ms": min(ttfa_mo) - min(ttfa_up),
        "upstream_rtf": med(rtf_up), "morpheus_rtf": med(rtf_mo),
        "rtf_ratio": med(ratios), "rounds": rounds,
    }


async def control(http: aiohttp.ClientSession, upstream: str, **knobs: Any) -> None:
    async with http.post(upstream + "/_control", json=knobs) as r:
        r.raise_for_status()


async def post_config(http: aiohttp.ClientSession, front: str, update: dict[str, Any]) -> None:
    async with http.post(front + "/config", json=update) as r:
        r.raise_for_status()


async def bench_network(rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with Child("tests.xtts_server", "--api", "streaming-server", "--cache",
                     probe="/languages") as xs, \
            Child("tests.xtts_server", "--api", "api-server", "--cache",
                  probe="/languages") as xa, \
            Child("tests.coqui_server", "--cache", probe="/locales") as coqui, \
            Child("tests.openai_server", "--cache", probe="/v1/audio/voices") as upstream, \
            ServerProcess(TTS_BACKEND="espeak", BACKENDS="espeak,openai_tts,xtts,coqui",
                          OPENAI_TTS_BASE_URL=upstream.url + "/v1", OPENAI_TTS_VOICE="af_bella",
                          XTTS_URL=xs.url,
                          COQUI_URL=coqui.url, FALLBACK_BACKEND="",
                          # a whole paragraph segment on a busy box: slow, not stalled
                          STALL_TIMEOUT_MS="30000") as front, \
            aiohttp.ClientSession() as http:
        async with http.get(xs.url + "/studio_speakers") as r:
            studio = await r.json()
        first_speaker = next(iter(studio))
        cases: list[tuple[str, str, Direct, str, dict[str, Any] | None]] = [
            ("openai_tts", "openai_tts", openai_direct(upstream.url, "af_bella"), upstream.url,
             None),
            ("xtts streaming-server", "xtts", xtts_streaming_direct(xs.url, studio[first_speaker]),
             xs.url, None),
            ("xtts api-server", "xtts", get_direct(xa.url, "/tts_stream", {
                "speaker_wav": "female_calm", "language": "en"}), xa.url, {"xtts_url": xa.url}),
            ("coqui", "coqui", get_direct(coqui.url, "/api/tts", {"speaker_id": "p225"},
                                          rate_hz=22_050), coqui.url, None),
        ]
        for label, backend, direct, url, config in cases:
            if config:
                await post_config(http, front.url, config)
            print(f"  measuring {label} ...", flush=True)
            try:
                results[label] = await compare(http, front.url, backend, direct, url, rounds)
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:  # report, measure the rest
                results[label] = {"error": f"{type(e).__name__}: {e}"}
    return results


def report(results: dict[str, Any]) -> None:
    print(f"  {'backend':<22} {'upstream':>9} {'morpheus':>9} {'overhead':>9} {'(best)':>8}   "
          f"{'RTF up':>7} {'RTF mo':>7} {'ratio':>6}")
    for label, r in results.items():
        if "error" in r:
            print(f"  {label:<22} failed: {r['error']}")
            continue
        ok = (r["overhead_ms"] <= TARGETS["overhead_ms"]
              and r["rtf_ratio"] >= TARGETS["rtf_ratio"])
        print(f"  {label:<22} {r['upstream_ttfa_p50_ms']:>7.0f}ms {r['morpheus_ttfa_p50_ms']:>7.0f}ms "
              f"{r['overhead_ms']:>+7.1f}ms {r['overhead_best_ms']:>+6.1f}ms   "
              f"{r['upstream_rtf']:>7.1f} {r['morpheus_rtf']:>7.1f} "
              f"{r['rtf_ratio']:>6.2f}  {'ok' if ok else 'MISSED'}")
    print(f"  targets: overhead <= {TARGETS['overhead_ms']:g} ms, "
          f"RTF ratio >= {TARGETS['rtf_ratio']:g}")


def run(rounds: int | None = None) -> dict[str, Any]:
    rounds = rounds or int(os.environ.get("MORPHEUS_BENCH_TRIALS", "11"))
    print("Network backends: through Morpheus vs the upstream alone (first audio of a short "
          "sentence, paired; RTF of a paragraph)")
    results = asyncio.run(bench_network(rounds))
    report(results)
    return {"targets": TARGETS, "backends": results}


if __name__ == "__main__":
    run()
