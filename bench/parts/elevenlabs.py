"""ElevenLabs benchmarks: the face's first audio next to /v1/audio/speech, and the adapter's
overhead over its upstream.

1. Face: one Piper server; the same sentence as `/v1/audio/speech` (pcm), as ElevenLabs'
   `/stream` (pcm_24000), `/stream/with-timestamps`, and the `stream-input` and
   `multi-stream-input` sockets, requests interleaved round by round. Target: each ElevenLabs
   route's median first audio within 5 ms of /v1/audio/speech's.
2. Adapter: a second server whose `elevenlabs` backend points at the first; first audio and
   RTF through it against the upstream's own `/stream`, interleaved. Targets: overhead
   <= 15 ms, RTF ratio >= 0.95.

Both servers run as child processes on 127.0.0.1. Part `elevenlabs`; `--set trials=10`
(rounds); targets in bench/targets.py.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp

from bench.parts.network import PARAGRAPH
from bench.prompts import SENTENCES
from bench.record import pct
from bench.servers import start_morpheus
from bench.suite import PartContext

SENTENCE_120 = SENTENCES[0]
Probe = Callable[[aiohttp.ClientSession, str, str], Awaitable[tuple[float, float]]]


async def openai_speech(http: aiohttp.ClientSession, url: str, text: str) -> tuple[float, float]:
    """(first audio ms, wall s) of /v1/audio/speech read as fast as it comes."""
    return await _http(http, f"{url}/v1/audio/speech",
                       {"input": text, "response_format": "pcm"}, {})


async def el_stream(http: aiohttp.ClientSession, url: str, text: str) -> tuple[float, float]:
    return await _http(http, f"{url}/v1/text-to-speech/default/stream", {"text": text},
                       {"output_format": "pcm_24000"})


async def el_stream_timestamps(http: aiohttp.ClientSession, url: str,
                               text: str) -> tuple[float, float]:
    return await _http(http, f"{url}/v1/text-to-speech/default/stream/with-timestamps",
                       {"text": text}, {"output_format": "pcm_24000"})


async def _http(http: aiohttp.ClientSession, url: str, body: dict[str, Any],
                params: dict[str, str]) -> tuple[float, float]:
    t0 = time.perf_counter()
    first = None
    async with http.post(url, json=body, params=params) as r:
        r.raise_for_status()
        async for chunk in r.content.iter_any():
            if first is None and chunk:
                first = time.perf_counter() - t0
    wall = time.perf_counter() - t0
    return 1000 * (first or wall), wall


async def el_socket(http: aiohttp.ClientSession, url: str, text: str,
                    multi: bool = False) -> tuple[float, float]:
    """First audio message of a socket, counted from the first text sent."""
    kind = "multi-stream-input" if multi else "stream-input"
    ws_url = f"{url.replace('http', 'ws')}/v1/text-to-speech/default/{kind}?output_format=pcm_24000"
    ctx = {"context_id": "c"} if multi else {}
    async with http.ws_connect(ws_url) as ws:
        await ws.send_json({"text": " ", **ctx})
        t0 = time.perf_counter()
        await ws.send_json({"text": text + " ", **ctx, "flush": True})
        if multi:  # the end of a turn: a bare flush, then close_context
            await ws.send_json({**ctx, "flush": True})
        await ws.send_json({**ctx, "close_context": True} if multi else {"text": ""})
        first = None
        while True:
            msg = await ws.receive(timeout=60)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            if first is None and data.get("audio"):
                first = time.perf_counter() - t0
            if data.get("isFinal"):
                if multi:
                    await ws.send_json({"close_socket": True})
                else:
                    break
    wall = time.perf_counter() - t0
    return 1000 * (first or wall), wall


async def el_multi(http: aiohttp.ClientSession, url: str, text: str) -> tuple[float, float]:
    return await el_socket(http, url, text, multi=True)


ROUTES: dict[str, Probe] = {"stream": el_stream, "stream_with_timestamps": el_stream_timestamps,
                            "stream_input": el_socket, "multi_stream_input": el_multi}


async def bench_face(rounds: int, out: Path, prefix: str = "", **env: str) -> dict[str, Any]:
    """Each ElevenLabs route against /v1/audio/speech, request by request: the delta is the
    median of the paired differences (a pair runs back to back, so load noise cancels)."""
    res: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        srv = await start_morpheus(stack, out, {"TTS_BACKEND": "piper", **env},
                                   name=f"morpheus-face-{prefix or 'piper'}")
        http = await stack.enter_async_context(aiohttp.ClientSession())
        for probe in (openai_speech, *ROUTES.values()):  # warm every path once
            await probe(http, srv.url, SENTENCE_120)
        base: list[float] = []
        deltas: dict[str, list[float]] = {k: [] for k in ROUTES}
        times: dict[str, list[float]] = {k: [] for k in ROUTES}
        for i in range(rounds):
            order = list(ROUTES.items())
            order = order[i % len(order):] + order[:i % len(order)]  # no route always first
            for j, (name, probe) in enumerate(order):
                pair = [openai_speech, probe] if (i + j) % 2 else [probe, openai_speech]
                got = {p: (await p(http, srv.url, SENTENCE_120))[0] for p in pair}
                base.append(got[openai_speech])
                times[name].append(got[probe])
                deltas[name].append(got[probe] - got[openai_speech])
        res[f"{prefix}openai_ttfa_p50_ms"] = pct(base, 50)
        for name in ROUTES:
            res[f"{prefix}{name}_ttfa_p50_ms"] = pct(times[name], 50)
            res[f"{prefix}{name}_delta_ms"] = pct(deltas[name], 50)
    return res


async def bench_adapter(rounds: int, out: Path, prefix: str = "", **env: str) -> dict[str, Any]:
    res: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        up = await start_morpheus(stack, out, {"TTS_BACKEND": "piper", **env},
                                  name=f"morpheus-upstream-{prefix or 'piper'}")
        front = await start_morpheus(stack, out, {
            "TTS_BACKEND": "elevenlabs", "BACKENDS": "elevenlabs,espeak",
            "ELEVENLABS_BASE_URL": up.url}, name=f"morpheus-front-{prefix or 'piper'}")
        http = await stack.enter_async_context(aiohttp.ClientSession())
        for _ in range(2):
            await el_stream(http, up.url, SENTENCE_120)
            await openai_speech(http, front.url, SENTENCE_120)
        direct, through, deltas = [], [], []
        for i in range(rounds):
            pair = [(el_stream, up.url), (openai_speech, front.url)]
            got = [(await probe(http, url, SENTENCE_120))[0]
                   for probe, url in (pair if i % 2 else pair[::-1])]
            d, t = got if i % 2 else got[::-1]
            direct.append(d)
            through.append(t)
            deltas.append(t - d)
        wall_direct, wall_through = [], []  # the same audio both ways: RTFs go as 1/wall
        for _ in range(3):
            wall_direct.append((await el_stream(http, up.url, PARAGRAPH))[1])
            wall_through.append((await openai_speech(http, front.url, PARAGRAPH))[1])
    res[f"{prefix}upstream_ttfa_p50_ms"] = pct(direct, 50)
    res[f"{prefix}adapter_ttfa_p50_ms"] = pct(through, 50)
    res[f"{prefix}adapter_overhead_ms"] = pct(deltas, 50)  # median of paired differences
    res[f"{prefix}adapter_rtf_ratio"] = (statistics.median(wall_direct)
                                         / statistics.median(wall_through))
    return res


async def _run(rounds: int, out: Path) -> dict[str, Any]:
    """The face runs twice: on Piper (real speech), and on the synthetic engine with a fixed
    20 ms to first audio, where only the routes themselves differ; the adapter too."""
    res = await bench_face(rounds, out)
    res.update(await bench_face(rounds, out, "synthetic_", TTS_BACKEND="synthetic",
                                SYNTHETIC_TTFB_MS="20"))
    res.update(await bench_adapter(rounds, out))
    res.update(await bench_adapter(rounds, out, "synthetic_", TTS_BACKEND="synthetic",
                                   SYNTHETIC_TTFB_MS="20", SYNTHETIC_RTF="20"))
    return res


def run(ctx: PartContext) -> dict[str, Any]:
    return ctx.run_async(_run(ctx.trials(10, 2), ctx.out))
