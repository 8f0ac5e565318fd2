"""The soak's load: a fixed number of workers, each making one request after another over a
face picked at random (the mix below), with a client-side fault now and then; a refused
request is retried after a short wait, as a client honouring Retry-After would.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import aiohttp

from bench.parts.soak.clients import (
    REQUEST_TIMEOUT_S,
    Attempt,
    Behaviour,
    ElevenLink,
    WsLink,
    elevenlabs_turn,
    http_speech,
    webrtc_speech,
    ws_speech,
    wyoming_speech,
)
from bench.parts.soak.figures import Tally
from bench.parts.soak.topology import Topology
from bench.prompts import PARAGRAPH, SENTENCES, SMART_HOME

# face -> weight (how often a worker picks it)
MIX = {"http_pcm": 2, "http_sse": 1, "http_whole": 1, "ws": 2, "webrtc": 1, "elevenlabs": 2,
       "wyoming": 1}
NETWORK_SHARE = 0.25  # of HTTP, WebSocket and WebRTC requests: the network backend, named
CANCEL_SHARE, VANISH_SHARE = 0.12, 0.06
RETRIES = 3
_SPLIT = PARAGRAPH.split(". ")
PIECES = (". ".join(_SPLIT[:3]) + ".", ". ".join(_SPLIT[3:6]) + ".")  # ~15 s of speech each
TEXTS = (*SMART_HOME, *SENTENCES, *PIECES)
QUICK_TEXTS = (SMART_HOME[0], SMART_HOME[5], SENTENCES[1], SENTENCES[3])


class Load:
    def __init__(self, topo: Topology, http: aiohttp.ClientSession,
                 admin: aiohttp.ClientSession, texts: tuple[str, ...], workers: int,
                 buffer_ms: float, seed: int = 18) -> None:
        self.topo, self.http, self.admin, self.texts = topo, http, admin, texts
        self.workers, self.buffer_ms, self.seed = workers, buffer_ms, seed
        self.tally = Tally()
        self.in_flight = 0

    def _pick(self, rng: random.Random, kind: str | None = None) -> Attempt:
        kind = kind or rng.choices(list(MIX), weights=list(MIX.values()))[0]
        weights = [6 if len(t) < 60 else 4 if len(t) < 130 else 1 for t in self.texts]
        text = rng.choices(self.texts, weights=weights)[0]
        network = kind.startswith("http") or kind in ("ws", "webrtc")
        backend = "openai_tts" if network and rng.random() < NETWORK_SHARE else None
        roll = rng.random()
        behaviour = Behaviour()
        if roll < CANCEL_SHARE:
            behaviour = Behaviour("cancel", rng.uniform(0.1, 2.5),
                                  rng.choice(("delete", "disconnect")))
        elif roll < CANCEL_SHARE + VANISH_SHARE:
            behaviour = Behaviour("vanish", rng.uniform(0.1, 2.5))
        return Attempt(kind, text, backend, behaviour)

    async def _one(self, a: Attempt, links: dict[Any, Any], rng: random.Random,
                   replica: str) -> Attempt:
        lb = self.topo.lb_url
        if a.transport.startswith("http_"):
            return await http_speech(self.http, lb, self.topo.direct, a, a.transport[5:],
                                     self.admin)
        if a.transport == "ws":
            link = links.setdefault(("ws", a.asked_backend), WsLink(self.http, lb, a.asked_backend))
            return await ws_speech(link, a, self.buffer_ms)
        if a.transport == "webrtc":
            return await webrtc_speech(self.http, lb, a)
        if a.transport == "elevenlabs":
            link = links.setdefault("elevenlabs", ElevenLink(self.http, lb))
            return await elevenlabs_turn(link, a, rng)
        a.replica = replica
        return await wyoming_speech(self.topo.wyoming_ports[replica], a)

    async def request(self, a: Attempt, links: dict[Any, Any], rng: random.Random) -> None:
        """One request, retried while it is refused; then tallied."""
        replica = rng.choice(("m1", "m2"))
        refused = 0
        self.in_flight += 1
        try:
            for attempt in range(RETRIES + 1):
                if attempt:  # the same request again, after a short wait
                    await asyncio.sleep(rng.uniform(0.3, 1.0))
                    a = Attempt(a.transport, a.text, a.asked_backend, a.behaviour)
                try:
                    a = await asyncio.wait_for(self._one(a, links, rng, replica),
                                               REQUEST_TIMEOUT_S)
                except asyncio.TimeoutError:
                    a.fail(f"no end in {REQUEST_TIMEOUT_S:.0f} s")
                if (a.outcome == "failed" and not a.started and not a.http_5xx
                        and a.replica in self.topo.draining):
                    # A draining replica closes the connections that owe nothing at once (the
                    # client reconnects, to the other replica): this request met that close
                    # before the server took it up. A refusal of new work, retried.
                    a.outcome, a.reason = "refused", f"closed by draining {a.replica}: {a.reason}"
                if a.outcome != "refused":
                    break
                if attempt == RETRIES:
                    break  # refused every time: that is the request's outcome
                self.tally.refused(a)
                refused += 1
                replica = "m1" if replica == "m2" else "m2"  # Wyoming: the other replica
            if a.outcome != "refused":
                self.tally.count_5xx(a)
            self.tally.add(a, refused)
        finally:
            self.in_flight -= 1

    async def worker(self, i: int, deadline: float) -> None:
        rng = random.Random(self.seed * 1000 + i)
        links: dict[Any, Any] = {}
        try:
            while time.monotonic() < deadline:
                await self.request(self._pick(rng), links, rng)
                await asyncio.sleep(rng.uniform(0.0, 0.3))
        finally:
            for link in links.values():
                await (link.shut() if isinstance(link, ElevenLink) else link.close())

    async def run(self, deadline: float) -> None:
        await asyncio.gather(*(self.worker(i, deadline) for i in range(self.workers)))

    async def warm_up(self) -> list[Attempt]:
        """Every face at the load's concurrency, with short texts and no faults, so that the
        servers' pools and first-use allocations are in place before `start` is read."""
        kinds = list(MIX)
        rounds = -(-len(kinds) // self.workers) + 1

        async def one(i: int) -> list[Attempt]:
            rng = random.Random(-1 - i)
            links: dict[Any, Any] = {}
            done = []
            try:
                for r in range(rounds):
                    a = self._pick(rng, kinds[(i + r) % len(kinds)])
                    a.text, a.behaviour = SMART_HOME[(i + r) % len(SMART_HOME)], Behaviour()
                    done.append(await asyncio.wait_for(
                        self._one(a, links, rng, ("m1", "m2")[r % 2]), REQUEST_TIMEOUT_S))
            finally:
                for link in links.values():
                    await (link.shut() if isinstance(link, ElevenLink) else link.close())
            return done

        done = [a for batch in await asyncio.gather(*(one(i) for i in range(self.workers)))
                for a in batch]
        return done + await self.burst()

    async def burst(self) -> list[Attempt]:
        """Whole answers from every replica, many at once: the servers' thread pools (files
        are spooled and engine steps run in the default executor, which grows on demand to
        its bound and keeps its threads) reach the size a load and its faults will give them,
        so that what `start` reads is the steady state, not a pool still to grow."""
        n = 2 * (self.workers + 4)

        async def whole(i: int) -> Attempt:
            a = Attempt("http_whole", SMART_HOME[i % len(SMART_HOME)],
                        ("piper", "espeak")[i % 2], Behaviour())
            replica = ("m1", "m2")[(i // 2) % 2]
            return await http_speech(self.admin, self.topo.direct[replica], {}, a, "whole")

        return list(await asyncio.gather(*(whole(i) for i in range(n))))


__all__ = ["MIX", "PIECES", "QUICK_TEXTS", "TEXTS", "Load"]
