"""Part `network`: network and command backends through Morpheus against their engine asked
directly, in the same run: openai_tts, xtts (both protocols), coqui, wyoming and command.

Upstreams, each a child process on 127.0.0.1 making real Piper speech and speaking its
protocol byte for byte: `python -m tests.openai_server` (Kokoro-FastAPI's shape) behind
openai_tts, `python -m tests.xtts_server` (streaming-server, then api-server) behind xtts,
`python -m tests.coqui_server` behind coqui, the real wyoming-piper (joe voice) behind wyoming,
and espeak-ng (`--stdout`) behind command. One Morpheus child has all of them enabled.

HTTP upstreams, first audio: each round asks the upstream directly, with the request the
adapter would send, then sends the same one-segment sentence through Morpheus (`POST
/v1/audio/speech`, pcm, streamed), back to back; the upstreams replay the speech of a text
they made before (`--cache`), so the engine's own time (and its noise on a busy machine) drops
out and the median paired difference is Morpheus's overhead. RTF: a paragraph (new text every
round, so Piper really runs) read as fast as possible, audio seconds over wall seconds, both
ways; the ratio is the median of each round's pair. wyoming and command cannot replay: their
first audio alternates request by request (medians, then the difference). Targets
(bench/targets.py): overhead <= 15 ms; RTF through Morpheus >= 0.95 of the upstream's.
`--set network.rounds=11` (HTTP upstreams), `--set trials=10` (wyoming, command).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
from wyoming.audio import AudioChunk, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

from bench.clients import MorpheusHttp
from bench.procs import ManagedProcess, free_port, python_module
from bench.prompts import PARAGRAPH as FULL_PARAGRAPH
from bench.record import pct
from bench.servers import start_child, start_morpheus, start_wyoming_piper
from bench.suite import PartContext
from dsp.wav import WavReader

SHORT = "The weather today is mild and sunny."  # one segment: the same work on both paths
SHORT_WYOMING = "Hello there! How can I help you today?"
SENTENCE = ("Thanks for calling the Morpheus help line, where every question gets a clear answer "
            "in a friendly, natural voice.")
# The first eight sentences of the benchmark's paragraph (about 40 s of speech).
PARAGRAPH = FULL_PARAGRAPH[:FULL_PARAGRAPH.index("hear it sing.") + len("hear it sing.")]
WAV_HEADER_BYTES = 44
ESPEAK = ["espeak-ng", "--stdout", "-v", "en-us"]

Timing = dict[str, float]
Direct = Callable[[aiohttp.ClientSession, str], Awaitable[dict[str, float]]]


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


async def speak(http: aiohttp.ClientSession, front: str, text: str, backend: str) -> Timing:
    """Through Morpheus: first audio (ms), wall (s), audio (s), RTF; an error raises."""
    rec = await MorpheusHttp(front, http, backend).speak(text)
    if rec.status != "ok" or rec.first_audio_ms is None or rec.wall_s is None:
        raise RuntimeError(f"{backend} through Morpheus: {rec.status} {rec.error}")
    return {"ttfa_ms": rec.first_audio_ms, "wall_s": rec.wall_s, "audio_s": rec.audio_ms / 1000,
            "rtf": rec.rtf or 0.0}


async def _answers(url: str) -> bool:
    """Anything but a 5xx: a test upstream is up."""
    try:
        async with aiohttp.ClientSession() as s, s.get(url, timeout=aiohttp.ClientTimeout(2)) as r:
            return r.status < 500
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return False


async def start_upstream(stack: AsyncExitStack, out: Path, name: str, module: str, *args: str,
                         probe: str) -> tuple[ManagedProcess, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = await start_child(stack, out, name, python_module(module, "--port", str(port), *args),
                             lambda: _answers(url + probe))
    return proc, url


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


async def compare_paired(http: aiohttp.ClientSession, front: str, backend: str, direct: Direct,
                  upstream: str, rounds: int) -> dict[str, float]:
    """Paired rounds, upstream first then through Morpheus, after one unmeasured of each."""
    await control(http, upstream, cache=True)
    await direct(http, SHORT)
    await speak(http, front, SHORT, backend)
    diffs, ttfa_up, ttfa_mo, rtf_up, rtf_mo, ratios = [], [], [], [], [], []
    for _ in range(rounds):
        up = await direct(http, SHORT)
        mo = await speak(http, front, SHORT, backend)
        diffs.append(mo["ttfa_ms"] - up["ttfa_ms"])
        ttfa_up.append(up["ttfa_ms"])
        ttfa_mo.append(mo["ttfa_ms"])
    await control(http, upstream, cache=False)  # Piper runs for every sentence now
    for i in range(rounds):
        up = await direct(http, f"Take {i} for the upstream. {PARAGRAPH}")
        mo = await speak(http, front, f"Take {i} through Morpheus. {PARAGRAPH}", backend)
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


async def wyoming_direct(host: str, port: int, text: str) -> Timing:
    """The upstream alone: one connection, one synthesize, read to audio-stop."""
    t0 = time.perf_counter()
    first = None
    audio_s = 0.0
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Synthesize(text=text).event())
        while (event := await client.read_event()) is not None:
            if AudioChunk.is_type(event.type):
                chunk = AudioChunk.from_event(event)
                first = first if first is not None else time.perf_counter() - t0
                audio_s += chunk.seconds
            elif AudioStop.is_type(event.type):
                break
    wall = time.perf_counter() - t0
    return {"ttfa_ms": 1000 * (first or wall), "wall_s": wall, "audio_s": audio_s,
            "rtf": audio_s / wall}


async def command_direct(text: str) -> Timing:
    """espeak-ng alone: the text on stdin, its WAV read from stdout to the end."""
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *ESPEAK, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(text.encode() + b"\n")
    proc.stdin.close()
    reader = WavReader()
    first = None
    pcm_bytes = 0
    while data := await proc.stdout.read(1 << 16):
        pcm = reader.feed(data)
        if pcm and first is None:
            first = time.perf_counter() - t0
        pcm_bytes += len(pcm)
    await proc.wait()
    wall = time.perf_counter() - t0
    assert reader.format is not None, "espeak-ng wrote no WAV"
    audio_s = pcm_bytes / 2 / reader.format.sample_rate_hz
    return {"ttfa_ms": 1000 * (first or wall), "wall_s": wall, "audio_s": audio_s,
            "rtf": audio_s / wall}


async def compare_alternating(http: aiohttp.ClientSession, front: str, backend: str,
                              direct: Callable[[str], Awaitable[Timing]],
                              trials: int) -> dict[str, float | None]:
    """First audio and RTF, engine alone vs through Morpheus, alternating request by request
    (these upstreams cannot replay a cached answer, so the pairs are not differenced)."""
    res: dict[str, float | None] = {}
    for text in (SHORT_WYOMING, SENTENCE):  # warm both paths
        await direct(text)
        await speak(http, front, text, backend)
    for name, text in (("short", SHORT_WYOMING), ("sentence", SENTENCE)):
        own, via = [], []
        for _ in range(trials):
            own.append((await direct(text))["ttfa_ms"])
            via.append((await speak(http, front, text, backend))["ttfa_ms"])
        res[f"{name}_engine_ttfa_p50_ms"] = pct(own, 50)
        res[f"{name}_morpheus_ttfa_p50_ms"] = pct(via, 50)
        res[f"{name}_morpheus_ttfa_p95_ms"] = pct(via, 95)
        res[f"{name}_overhead_ms"] = _minus(pct(via, 50), pct(own, 50))
    own_rtf, via_rtf = [], []
    for _ in range(3):
        own_rtf.append((await direct(PARAGRAPH))["rtf"])
        via_rtf.append((await speak(http, front, PARAGRAPH, backend))["rtf"])
    res["engine_rtf"] = statistics.median(own_rtf)
    res["morpheus_rtf"] = statistics.median(via_rtf)
    res["rtf_ratio"] = statistics.median(via_rtf) / statistics.median(own_rtf)
    res["overhead_ms"] = res["short_overhead_ms"]
    res["rounds"] = trials
    return res


async def bench_network(rounds: int, trials: int, out: Path) -> dict[str, Any]:
    from bench.parts.wyoming import joe_voice

    results: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        ups = await asyncio.gather(
            start_upstream(stack, out, "xtts-streaming", "tests.xtts_server", "--api",
                           "streaming-server", "--cache", probe="/languages"),
            start_upstream(stack, out, "xtts-api", "tests.xtts_server", "--api", "api-server",
                           "--cache", probe="/languages"),
            start_upstream(stack, out, "coqui", "tests.coqui_server", "--cache",
                           probe="/locales"),
            start_upstream(stack, out, "openai", "tests.openai_server", "--cache",
                           probe="/v1/audio/voices"),
            start_wyoming_piper(stack, out, joe_voice()))
        (_, xs), (_, xa), (_, coqui), (_, upstream), (_, wyoming_port) = ups
        front = (await start_morpheus(stack, out, {
            "TTS_BACKEND": "espeak", "BACKENDS": "espeak,openai_tts,xtts,coqui,wyoming,command",
            "OPENAI_TTS_BASE_URL": upstream + "/v1", "OPENAI_TTS_VOICE": "af_bella",
            "XTTS_URL": xs, "COQUI_URL": coqui, "FALLBACK_BACKEND": "",
            "WYOMING_TTS_URI": f"tcp://127.0.0.1:{wyoming_port}",
            "COMMAND_TTS": " ".join(ESPEAK[:-1]) + " {voice}", "COMMAND_TTS_VOICES": ESPEAK[-1],
            # a whole paragraph segment on a busy box: slow, not stalled
            "STALL_TIMEOUT_MS": "30000"})).url
        http = await stack.enter_async_context(aiohttp.ClientSession())
        async with http.get(xs + "/studio_speakers") as r:
            studio = await r.json()
        first_speaker = next(iter(studio))
        cases: list[tuple[str, str, Direct, str, dict[str, Any] | None]] = [
            ("openai_tts", "openai_tts", openai_direct(upstream, "af_bella"), upstream, None),
            ("xtts streaming-server", "xtts", xtts_streaming_direct(xs, studio[first_speaker]),
             xs, None),
            ("xtts api-server", "xtts", get_direct(xa, "/tts_stream", {
                "speaker_wav": "female_calm", "language": "en"}), xa, {"xtts_url": xa}),
            ("coqui", "coqui", get_direct(coqui, "/api/tts", {"speaker_id": "p225"},
                                          rate_hz=22_050), coqui, None),
        ]
        for label, backend, direct, url, config in cases:
            if config:
                await post_config(http, front, config)
            print(f"  measuring {label} ...", flush=True)
            try:
                results[label] = await compare_paired(http, front, backend, direct, url, rounds)
            except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError) as e:
                results[label] = {"error": f"{type(e).__name__}: {e}"}  # measure the rest
        alternating: list[tuple[str, Callable[[str], Awaitable[Timing]]]] = [
            ("wyoming", lambda text: wyoming_direct("127.0.0.1", wyoming_port, text)),
            ("command", command_direct)]
        for backend, direct_once in alternating:
            print(f"  measuring {backend} ...", flush=True)
            try:
                results[backend] = await compare_alternating(http, front, backend, direct_once,
                                                              trials)
            except (OSError, asyncio.TimeoutError, RuntimeError) as e:
                results[backend] = {"error": f"{type(e).__name__}: {e}"}
    return results


def run(ctx: PartContext) -> dict[str, Any]:
    rounds = int(ctx.param("rounds") or (2 if ctx.quick else 11))
    return {"backends": ctx.run_async(bench_network(rounds, ctx.trials(10, 2), ctx.out))}
