"""Speed of the `wyoming` and `command` backends through Morpheus next to their engines alone,
measured in the same run: first audio through Morpheus minus the engine's own (target <= 15
ms) and RTF through Morpheus over the engine's (target >= 0.95).

Engine alone: wyoming-piper (bundled joe voice) asked directly with the `wyoming` client
(first audio-chunk, audio-stop), and espeak-ng run directly (first PCM bytes after its WAV
header, exit). Through Morpheus: `POST /v1/audio/speech` (pcm, read as fast as it comes) to a
server in a child process. The two alternate, request by request, so the load of a shared
machine falls on both alike. `python -m bench.wyoming_client`; MORPHEUS_BENCH_TRIALS sets the
number of first-audio trials (default 10).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from wyoming.audio import AudioChunk, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

from bench.speech import PARAGRAPH, ServerProcess, pct, speak
from dsp.wav import WavReader

SHORT = "Hello there! How can I help you today?"
SENTENCE = ("Thanks for calling the Morpheus help line, where every question gets a clear answer "
            "in a friendly, natural voice.")
TARGETS = {"overhead_ms": 15.0, "rtf_ratio": 0.95}
ESPEAK = ["espeak-ng", "--stdout", "-v", "en-us"]

Timing = dict[str, float]


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


async def compare(direct: Callable[[str], Awaitable[Timing]], trials: int,
                  **server_env: str) -> dict[str, float]:
    """First audio and RTF, engine alone vs through Morpheus, alternating request by request."""
    res: dict[str, float] = {}
    async with ServerProcess(**server_env) as srv, aiohttp.ClientSession() as http:
        for text in (SHORT, SENTENCE):  # warm both paths (the engine's voice, Morpheus' sessions)
            await direct(text)
            await speak(http, srv.url, text)
        for name, text in (("short", SHORT), ("sentence", SENTENCE)):
            own, via = [], []
            for _ in range(trials):
                own.append((await direct(text))["ttfa_ms"])
                via.append((await speak(http, srv.url, text))["ttfa_ms"])
            res[f"{name}_engine_ttfa_p50_ms"] = pct(own, 50)
            res[f"{name}_morpheus_ttfa_p50_ms"] = pct(via, 50)
            res[f"{name}_morpheus_ttfa_p95_ms"] = pct(via, 95)
            res[f"{name}_overhead_ms"] = pct(via, 50) - pct(own, 50)
        own_rtf, via_rtf = [], []
        for _ in range(3):
            own_rtf.append((await direct(PARAGRAPH))["rtf"])
            via_rtf.append((await speak(http, srv.url, PARAGRAPH))["rtf"])
        res["engine_rtf"] = statistics.median(own_rtf)
        res["morpheus_rtf"] = statistics.median(via_rtf)
        res["rtf_ratio"] = res["morpheus_rtf"] / res["engine_rtf"]
    res["overhead_ms"] = res["short_overhead_ms"]
    return res


async def bench(trials: int) -> dict[str, Any]:
    from tests.wyoming_servers import WyomingPiper  # the test helper starts it by PID

    out: dict[str, Any] = {}
    async with WyomingPiper() as upstream:
        out["wyoming"] = await compare(
            lambda text: wyoming_direct("127.0.0.1", upstream.port, text), trials,
            TTS_BACKEND="wyoming", BACKENDS="wyoming,espeak", WYOMING_TTS_URI=upstream.uri)
    out["command"] = await compare(
        command_direct, trials, TTS_BACKEND="command", BACKENDS="command,espeak",
        COMMAND_TTS=" ".join(ESPEAK[:-1]) + " {voice}", COMMAND_TTS_VOICES=ESPEAK[-1])
    return out


def report(name: str, res: dict[str, float]) -> None:
    rows = [
        ("first audio, short text: engine alone p50 (ms)", res["short_engine_ttfa_p50_ms"], ""),
        ("first audio, short text: through Morpheus p50 (ms)", res["short_morpheus_ttfa_p50_ms"],
         ""),
        ("overhead on the short text (ms)", res["short_overhead_ms"], "<= 15"),
        ("first audio, 120-char sentence: engine alone p50 (ms)",
         res["sentence_engine_ttfa_p50_ms"], ""),
        ("first audio, 120-char sentence: through Morpheus p50 (ms)",
         res["sentence_morpheus_ttfa_p50_ms"], ""),
        ("RTF, engine alone (paragraph)", res["engine_rtf"], ""),
        ("RTF, through Morpheus (paragraph)", res["morpheus_rtf"], ""),
        ("RTF ratio Morpheus/engine", res["rtf_ratio"], ">= 0.95"),
    ]
    print(f"{name}:")
    for label, value, target in rows:
        print(f"  {label:<58} {value:>9.2f}   {target}")


def run(trials: int | None = None) -> dict[str, Any]:
    res = asyncio.run(bench(trials or int(os.environ.get("MORPHEUS_BENCH_TRIALS", "10"))))
    report("wyoming (wyoming-piper, joe voice)", res["wyoming"])
    report("command (espeak-ng --stdout)", res["command"])
    return res


if __name__ == "__main__":
    out = run()
    Path(os.environ.get("MORPHEUS_BENCH_JSON", "/dev/null")).write_text(json.dumps(out))
