"""Part `orchestrator`: the synthetic engine through the orchestrator, no transport: underflows
over a long narration on looptime's virtual clock (minutes of audio in a second) at 1.5x and
20x real time, and delivery jitter to a real-time listener on the real clock.

Knobs: `--set orchestrator.minutes=5` (narration), `--set orchestrator.jitter_s=30`."""

from __future__ import annotations

import asyncio
from typing import Any

from adapters.synthetic import SyntheticAdapter, SyntheticKnobs
from bench.record import pct
from bench.suite import PartContext
from server.core.events import AudioOut
from server.core.stream import StreamSpec
from tests.sim import Listener, make_orchestrator, narrate, narration


def virtual_narration(rtf: float, minutes: float) -> dict[str, float | None]:
    """A long narration on looptime's virtual clock (minutes of audio in a second)."""
    import looptime

    async def go() -> Any:
        adapter = SyntheticAdapter(SyntheticKnobs(rtf=rtf))
        orch = make_orchestrator({"synthetic": adapter})
        return await narrate(orch, narration(minutes))

    loop = looptime.patch_event_loop(asyncio.new_event_loop(), start=0)
    try:
        run = loop.run_until_complete(go())
    finally:
        loop.close()
    return {"audio_s": run.audio_ms / 1000, "underflows": float(run.underflows),
            "starved_ms": run.listener.starved_ms}


async def real_clock_jitter(rtf: float, seconds: float) -> dict[str, float | None]:
    """Deliveries to a real-time listener: |interval - expected| where the expected interval
    is the audio the listener consumed since the previous delivery at steady buffer."""
    adapter = SyntheticAdapter(SyntheticKnobs(rtf=rtf))
    orch = make_orchestrator({"synthetic": adapter})
    listener = Listener()
    stream = await orch.open(StreamSpec(transport="bench"), observer=listener)
    stream.push_text(narration(seconds / 60))
    stream.end_input()
    loop = asyncio.get_running_loop()
    times: list[float] = []
    sizes: list[float] = []
    async for ev in stream:
        if isinstance(ev, AudioOut):
            times.append(loop.time())
            sizes.append(len(ev.pcm) / 48)
    await stream.aclose()
    # RFC 3550: D = (arrival gap) - (media-time gap); J += (|D| - J) / 16. Steady part only
    # (the first 2 s fill the buffer faster than real time on purpose).
    t0 = times[0]
    dev, jitter, j = [], [], 0.0
    for i in range(1, len(times)):
        d = abs(1000 * (times[i] - times[i - 1]) - sizes[i - 1])
        j += (d - j) / 16
        if times[i] - t0 > 2.0:
            dev.append(d)
            jitter.append(j)
    return {"jitter_p95_ms": pct(jitter, 95), "abs_d_p95_ms": pct(dev, 95),
            "abs_d_p50_ms": pct(dev, 50),
            "underflows_real": float(stream.underflows), "chunks": float(len(times))}


def run(ctx: PartContext) -> dict[str, Any]:
    minutes = float(ctx.param("minutes") or (1 if ctx.quick else 5))
    jitter_s = float(ctx.param("jitter_s") or (8 if ctx.quick else 30))
    res: dict[str, Any] = {"narration_minutes": minutes, "jitter_seconds": jitter_s}
    for rtf in (1.5, 20.0):
        r = virtual_narration(rtf, minutes)
        res[f"rtf{rtf}_underflows"] = r["underflows"]
        res[f"rtf{rtf}_starved_ms"] = r["starved_ms"]
    # |arrival gap - media gap| p95 is the segment ends: a short last chunk, then the next
    # segment's first
    res.update(ctx.run_async(real_clock_jitter(1.5, jitter_s)))
    return res
