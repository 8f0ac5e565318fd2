"""Orchestrator benchmarks on the synthetic engine: underflows, delivery jitter, concurrency."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import numpy as np

from adapters.synthetic import SyntheticAdapter, SyntheticKnobs
from server.core.stream import StreamSpec
from server.core.events import AudioOut
from tests.sim import Listener, make_orchestrator, narrate, narration

TARGETS = {"underflows": 0, "jitter_p95_ms": 50.0}


def virtual_narration(rtf: float, minutes: float) -> dict[str, float]:
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


async def real_clock_jitter(rtf: float, seconds: float) -> dict[str, float]:
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
    return {"jitter_p95_ms": float(np.percentile(jitter, 95)),
            "abs_d_p95_ms": float(np.percentile(dev, 95)),
            "abs_d_p50_ms": float(np.percentile(dev, 50)),
            "underflows_real": float(stream.underflows), "chunks": float(len(times))}


def run() -> dict[str, float]:
    minutes = float(os.environ.get("MORPHEUS_BENCH_NARRATION_MIN", "5"))
    res: dict[str, float] = {}
    for rtf in (1.5, 20.0):
        r = virtual_narration(rtf, minutes)
        res[f"rtf{rtf}_underflows"] = r["underflows"]
        res[f"rtf{rtf}_starved_ms"] = r["starved_ms"]
    res.update(asyncio.run(real_clock_jitter(1.5, float(os.environ.get("MORPHEUS_BENCH_JITTER_S", "30")))))
    print(f"Orchestrator on the synthetic engine ({minutes:g}-minute narration, virtual clock)")
    print(f"  underflows at 1.5x real time                        {res['rtf1.5_underflows']:>9.0f}   0")
    print(f"  underflows at 20x real time                         {res['rtf20.0_underflows']:>9.0f}   0")
    print(f"  starved ms at 1.5x (listener ran dry)               {res['rtf1.5_starved_ms']:>9.1f}   0")
    print(f"  delivery jitter (RFC 3550 J) p95, 1.5x, real clock  {res['jitter_p95_ms']:>9.1f}   <= 50")
    print(f"  |arrival gap - media gap| p50 / p95 (ms)            {res['abs_d_p50_ms']:>5.1f} / {res['abs_d_p95_ms']:.1f}"
          "   (p95 = segment ends: a short last chunk, then the next segment's first)")
    print(f"  underflows in the real-clock run                    {res['underflows_real']:>9.0f}   0")
    return res


if __name__ == "__main__":
    run()
