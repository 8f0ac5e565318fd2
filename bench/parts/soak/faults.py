"""The soak's fault schedule: what is done to the servers, and when (a fraction of the load's
length), each recorded with what it did and how the servers took it.

| at | fault |
|---|---|
| 0.10 | `.env` edit: PLAYBACK_BUFFER_MS 300 -> 400 (the replicas watch the file) |
| 0.15 | backend hot swap: `POST /config {"tts_backend": "espeak"}` on both replicas |
| 0.25 | a client that stops reading mid-stream (TCP backpressure), then reads on |
| 0.35 | hot swap back to piper |
| 0.40 | the network upstream (openai_tts) killed with SIGKILL |
| 0.50 | ... and started again on the same port |
| 0.60 | SIGTERM to replica m2: it drains, exits, and is started again |
| 0.80 | `.env` edit back: PLAYBACK_BUFFER_MS 400 -> 300 |

Clients that cancel at random points and clients that vanish mid-stream run all along (the
load's behaviours, bench/parts/soak/load.py).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.parts.soak.clients import BYTES_PER_MS, Attempt, Behaviour
from bench.parts.soak.topology import GRACE_S, Topology
from bench.prompts import PARAGRAPH

STALLED_TEXT = PARAGRAPH  # about a minute of speech: more than the socket buffers hold


@dataclass
class Fault:
    at: float  # fraction of the load's length
    name: str
    run: Callable[[], Awaitable[dict[str, Any]]]


class Faults:
    """The schedule for one soak, over one topology."""

    def __init__(self, topo: Topology, http: aiohttp.ClientSession, soak_s: float,
                 on_attempt: Callable[[Attempt], None]) -> None:
        self.topo, self.http, self.soak_s = topo, http, soak_s
        self.on_attempt = on_attempt  # the stalled client's request joins the tally
        self.stall_s = min(15.0, max(3.0, 0.1 * soak_s))
        self.active: set[str] = {"piper"}  # every backend that was active at some point
        self.log: list[dict[str, Any]] = []

    def schedule(self) -> list[Fault]:
        return [
            Fault(0.10, "env_edit", lambda: self.env_edit("400")),
            Fault(0.15, "hot_swap", lambda: self.hot_swap("espeak")),
            Fault(0.25, "client_stops_reading", self.stalled_client),
            Fault(0.35, "hot_swap_back", lambda: self.hot_swap("piper")),
            Fault(0.40, "upstream_killed", self.kill_upstream),
            Fault(0.50, "upstream_restarted", self.restart_upstream),
            Fault(0.60, "replica_sigterm", self.sigterm_replica),
            Fault(0.80, "env_edit_back", lambda: self.env_edit("300")),
        ]

    async def run(self, t0: float) -> None:
        """Each fault at its time; one that takes long (a drain) does not delay the next."""
        tasks = []
        for fault in self.schedule():
            delay = t0 + fault.at * self.soak_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(self._one(fault, t0)))
        await asyncio.gather(*tasks)

    async def _one(self, fault: Fault, t0: float) -> None:
        entry: dict[str, Any] = {"fault": fault.name, "at_s": round(time.monotonic() - t0, 1)}
        try:
            entry.update(await fault.run())
        except Exception as e:  # recorded: a fault that could not be made is a finding
            entry["error"] = f"{type(e).__name__}: {e}"
        entry["took_s"] = round(time.monotonic() - t0 - entry["at_s"], 1)
        self.log.append(entry)

    # --- the faults -----------------------------------------------------------------------

    async def env_edit(self, buffer_ms: str) -> dict[str, Any]:
        """Edit the shared .env; seconds until every live replica's /config shows it."""
        t0 = time.monotonic()
        self.topo.write_env(PLAYBACK_BUFFER_MS=buffer_ms)
        seen: dict[str, float | None] = {}
        for name, m in self.topo.replicas.items():
            seen[name] = None
            while time.monotonic() - t0 < 15:
                try:
                    async with self.http.get(m.url + "/config") as r:
                        if float((await r.json())["playback_buffer_ms"]) == float(buffer_ms):
                            seen[name] = round(time.monotonic() - t0, 2)
                            break
                except (aiohttp.ClientError, asyncio.TimeoutError, KeyError):
                    pass  # a replica being restarted
                await asyncio.sleep(0.2)
        return {"playback_buffer_ms": float(buffer_ms), "seen_after_s": seen}

    async def hot_swap(self, backend: str) -> dict[str, Any]:
        self.active.add(backend)
        answers = {}
        for name, m in self.topo.replicas.items():
            async with self.http.post(m.url + "/config", json={"tts_backend": backend}) as r:
                answers[name] = r.status
                await r.read()
        return {"tts_backend": backend, "status": answers}

    async def kill_upstream(self) -> dict[str, Any]:
        assert self.topo.upstream.process is not None
        pid = self.topo.upstream.pid
        self.topo.upstream.process.kill()
        return {"pid": pid, "signal": "SIGKILL"}

    async def restart_upstream(self) -> dict[str, Any]:
        t0 = time.monotonic()
        await self.topo.upstream.restart()
        up_s = time.monotonic() - t0
        back = None  # until the replicas use it again (they back off a failed upstream)
        while time.monotonic() - t0 < 60:
            async with self.http.post(self.topo.replicas["m1"].url + "/v1/audio/speech", json={
                    "input": "Back again.", "backend": "openai_tts", "response_format": "pcm",
                    "stream": False}) as r:
                await r.read()
                if r.status == 200 and r.headers.get("X-Degraded") == "false":
                    back = round(time.monotonic() - t0, 2)
                    break
            await asyncio.sleep(0.5)
        return {"healthy_after_s": round(up_s, 2), "used_again_after_s": back}

    async def sigterm_replica(self, name: str = "m2") -> dict[str, Any]:
        m = self.topo.replicas[name]
        assert m.process is not None
        t0 = time.monotonic()
        self.topo.draining.add(name)
        m.process.signal(signal.SIGTERM)
        code = await m.process.exited(GRACE_S + 20)
        drained = time.monotonic() - t0
        if code is None:  # still there past its grace period: a finding, then end it
            m.process.kill()
        t1 = time.monotonic()
        await m.restart(180)
        up = await self.topo.wait_up(self.http, (name,), 120)
        self.topo.draining.discard(name)
        return {"replica": name, "exit_code": code, "drain_s": round(drained, 2),
                "restart_s": round(time.monotonic() - t1, 2), "balancer_up_after_s":
                round(up, 2)}

    async def stalled_client(self) -> dict[str, Any]:
        """A PCM stream from the primary replica whose reader stops for `stall_s` after its
        first 64 KB (the server's writes back up through TCP), then reads to the end."""
        a = Attempt("http_stalled", STALLED_TEXT, "piper", Behaviour())
        rec = a.rec
        before = after = 0
        resumed_at = None
        try:
            async with self.http.post(self.topo.replicas["m1"].url + "/v1/audio/speech", json={
                    "input": STALLED_TEXT, "backend": "piper", "response_format": "pcm"}) as r:
                a.replica = "m1"
                if r.status != 200:
                    a.status(r.status, r.headers, await r.text())
                else:
                    rec.backend = r.headers.get("X-Backend")
                    rec.degraded = r.headers.get("X-Degraded") == "true"
                    while before < 65536:
                        data = await r.content.readany()
                        if not data:
                            break
                        before += len(data)
                        rec.add(time.monotonic(), len(data) / BYTES_PER_MS)
                    await asyncio.sleep(self.stall_s)
                    resumed_at = time.monotonic()
                    async for data in r.content.iter_any():
                        after += len(data)
                        rec.add(time.monotonic(), len(data) / BYTES_PER_MS)
                    rec.end(time.monotonic(), "ok")
        except (aiohttp.ClientError, ConnectionError) as e:
            a.fail(f"{type(e).__name__}: {e}")
        self.on_attempt(a)
        return {"outcome": a.outcome, "reason": a.reason, "stall_s": self.stall_s,
                "audio_ms": round(rec.audio_ms, 1), "read_before_stall_bytes": before,
                "read_after_bytes": after,
                # how long the rest took once it read again: the engine's pace, not an
                # instant, when backpressure held it
                "rest_took_s": None if resumed_at is None or rec.ended_at is None
                else round(rec.ended_at - resumed_at, 2)}


__all__ = ["Fault", "Faults"]
