"""One soak, start to end: servers up, texts measured, warm-up, `start` read, load and faults
together, the load's end awaited, `end` read once the primary has settled."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AsyncExitStack
from typing import Any

import aiohttp

from bench.parts.soak import topology
from bench.parts.soak.faults import STALLED_TEXT, Faults
from bench.parts.soak.figures import Sampler, reference_ms, resources_figures, settled
from bench.parts.soak.load import MIX, QUICK_TEXTS, TEXTS, Load
from bench.procs import REPO, Resources, children, fd_kinds, thread_waits
from bench.suite import PartContext, phase

LOAD_SHARE = 0.7  # of the capacity the sweep measured
SUBJECT = "morpheus/piper/http"  # whose capacity sizes the load
FALLBACK_STREAMS = 4  # when no sweep has been run anywhere
END_WAIT_S = 60.0  # after the load, how long the primary gets to give back what it took
PUBLISHED = REPO / "docs" / "bench" / "bench.json"


def concurrency(ctx: PartContext) -> tuple[int, dict[str, Any]]:
    """Streams in flight during the load, and where the number comes from."""
    if ctx.opts.soak_streams:
        return ctx.opts.soak_streams, {"source": "--soak-streams"}
    held = (ctx.doc.get("capacity") or {}).get(SUBJECT)
    source = "this run's sweep"
    if held is None and PUBLISHED.exists():
        from bench.cli import legacy
        from bench.targets import capacity

        held = capacity(legacy(json.loads(PUBLISHED.read_text()))).get(SUBJECT)
        source = f"the last published sweep ({PUBLISHED.relative_to(REPO)})"
    if held is None:
        return FALLBACK_STREAMS, {"source": "no sweep result: a fixed default"}
    return max(2, round(LOAD_SHARE * held)), {"source": source, "capacity": held,
                                              "share": LOAD_SHARE}


async def soak(ctx: PartContext) -> dict[str, Any]:
    soak_s = ctx.opts.soak_s or (30.0 if ctx.quick else 600.0)
    streams, how = concurrency(ctx)
    texts = QUICK_TEXTS if ctx.quick or soak_s < 120 else TEXTS
    out: dict[str, Any] = {"soak_s": soak_s, "concurrency": {"streams": streams, **how},
                           "mix": MIX, "texts": len(texts)}
    phase(f"soak: {streams} streams for {soak_s:.0f} s")
    async with AsyncExitStack() as stack:
        topo = await topology.start(stack, ctx.out, parallel_streams=streams + 4)
        http = await stack.enter_async_context(aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)))
        # Everything the soak asks a replica directly (calibration, /metrics, /config, a
        # DELETE) goes without keep-alive: the bench's own idle connections are not the
        # server's descriptors to count.
        admin = await stack.enter_async_context(aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            connector=aiohttp.TCPConnector(force_close=True)))
        m1 = topo.replicas["m1"]
        phase("soak: measuring what each text needs")
        refs = await reference_ms(admin, m1.url, (*texts, STALLED_TEXT))
        buffer_ms = 300.0
        load = Load(topo, http, admin, texts, streams, buffer_ms)
        phase("soak: warm-up")
        warm = await load.warm_up()
        out["warm_up"] = {"requests": len(warm),
                          "not_completed": [f"{a.transport}: {a.outcome} {a.reason}"
                                            for a in warm if a.outcome != "completed"]}
        await asyncio.sleep(2)
        assert m1.pid is not None
        start = await settled(m1.pid)
        start_kinds, start_waits = fd_kinds(m1.pid), await asyncio.to_thread(thread_waits, m1.pid)
        sampler = Sampler({"m1": lambda: m1.pid, "m2": lambda: topo.replicas["m2"].pid
                           if topo.replicas["m2"].process and topo.replicas["m2"].process.running
                           else None, "upstream": lambda: topo.upstream.pid
                           if topo.upstream.process and topo.upstream.process.running else None},
                          {"m1": m1.url, "m2": topo.replicas["m2"].url},
                          lambda: load.in_flight)
        await sampler.sample(admin)  # the counters' baseline
        underflows0 = sampler.server_underflows()
        sampling = asyncio.ensure_future(sampler.run(admin))
        faults = Faults(topo, admin, soak_s, lambda a: load.tally.add(a, 0))
        t0 = load.tally.t0 = time.monotonic()
        phase("soak: load and faults")
        try:
            await asyncio.gather(load.run(t0 + soak_s), faults.run(t0))
            out["load_s"] = round(time.monotonic() - t0, 1)
            phase("soak: waiting for the primary to settle")
            end, waited = await _settle(m1.pid, start)
            end_kinds, end_waits = fd_kinds(m1.pid), await asyncio.to_thread(thread_waits, m1.pid)
            end_children = children(m1.pid)
            await sampler.sample(admin)
        finally:
            sampling.cancel()
            await asyncio.gather(sampling, return_exceptions=True)
        out |= load.tally.figures(refs, faults.active, buffer_ms)
        (ctx.out / "requests.jsonl").write_text(  # noqa: ASYNC240 (once, after the load)
            "".join(json.dumps(row) + "\n" for row in load.tally.rows()))
        out["underflows_server"] = sampler.server_underflows() - underflows0
        out["faults"] = sorted(faults.log, key=lambda f: f["at_s"])
        out["resources"] = {
            "primary": {"replica": "m1", "settle_s": waited,
                        **resources_figures(sampler.series["m1"], start, end),
                        # what was not given back: descriptors by kind, threads by what they
                        # wait in, child processes still there
                        "fds_left": {k: n for k in end_kinds
                                     if (n := end_kinds[k] - start_kinds.get(k, 0)) > 0},
                        "threads_left": {k: n for k in end_waits
                                         if (n := end_waits[k] - start_waits.get(k, 0)) > 0},
                        "threads_by_wait": {"start": start_waits, "end": end_waits},
                        "children_at_end": end_children},
            "drained_replica": _series_only(sampler.series["m2"]),
            "upstream": _series_only(sampler.series["upstream"]),
        }
        out["streams_in_flight"] = {"t_s": [t for t, _ in sampler.streams],
                                    "n": [n for _, n in sampler.streams]}
        out["references_ms"] = {b: {str(len(t)): round(ms, 1) for t, ms in r.items()}
                                for b, r in refs.items()}
    return out


async def _settle(pid: int, start: Resources) -> tuple[Resources, float]:
    """The primary's resources once back within 5% of `start` (or after END_WAIT_S)."""
    t0 = time.monotonic()
    while True:
        end = await settled(pid)
        back = (end.rss_mb <= 1.05 * start.rss_mb and end.fds <= 1.05 * start.fds
                and end.threads <= 1.05 * start.threads)
        if back or time.monotonic() - t0 > END_WAIT_S:
            return end, round(time.monotonic() - t0, 1)
        await asyncio.sleep(2)


def _series_only(series: list[tuple[float, float, int, int]]) -> dict[str, Any]:
    """A process that was restarted (or killed): its peak and its readings, no start/end."""
    if not series:
        return {}
    return {"peak": {"rss_mb": max(s[1] for s in series), "fds": max(s[2] for s in series),
                     "threads": max(s[3] for s in series)},
            "series": {"t_s": [s[0] for s in series], "rss_mb": [round(s[1], 1) for s in series],
                       "fds": [s[2] for s in series], "threads": [s[3] for s in series]}}


__all__ = ["concurrency", "soak"]
