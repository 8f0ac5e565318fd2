"""What the soak runs: a network upstream, two Morpheus replicas behind HAProxy, and the ways
to hurt them.

- `upstream`: a Morpheus that speaks the OpenAI API with espeak-ng (cheap on a shared
  machine; any OpenAI-compatible server would do). The replicas' `openai_tts` backend points
  at it, with `FALLBACK_BACKEND=espeak`: while it is down, those streams fail over, flagged
  `degraded`.
- `m1`, `m2`: the servers under test, started with `--env-file` on one shared `.env` (the soak
  edits it), each with its Wyoming face on its own port. `m1` is the primary: it is never
  signalled, so its memory, descriptors and threads are comparable from start to end. `m2`
  gets SIGTERM (it drains, exits, and is started again on the same port).
- `haproxy`: Debian's haproxy running the shipped deploy/haproxy/haproxy.cfg on loopback, as
  tests/test_replicas_haproxy.py runs it. HTTP, WebSocket, ElevenLabs and WebRTC offers go
  through it; Wyoming (TCP) goes to a replica's face directly.
"""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import aiohttp

from bench.procs import REPO, ManagedProcess, free_port
from bench.servers import Morpheus, start_child, start_morpheus

HAPROXY_CFG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
GRACE_S = 30  # SHUTDOWN_GRACE_S of the replicas
# The .env the replicas read; the soak flips PLAYBACK_BUFFER_MS in it and back.
ENV_KEYS = ("TTS_BACKEND", "BACKENDS", "FALLBACK_BACKEND", "OPENAI_TTS_BASE_URL",
            "PARALLEL_STREAMS", "QUEUE_MAX", "SHUTDOWN_GRACE_S", "PLAYBACK_BUFFER_MS",
            "UPSTREAM_BACKOFF_S")
# Settings of this process's environment a replica must not inherit: the .env decides them.
UNSET = (*ENV_KEYS, "API_KEY", "ALLOWED_HOSTS", "WYOMING_URI", "LOG_LEVEL")


def haproxy_binary() -> str | None:
    """Debian puts it in /usr/sbin, which is not on a normal user's PATH."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")


@dataclass
class Topology:
    out: Path
    upstream: Morpheus
    replicas: dict[str, Morpheus]
    wyoming_ports: dict[str, int]
    haproxy: ManagedProcess
    lb_url: str
    stats_url: str
    env_file: Path
    env: dict[str, str]
    # replicas the soak has signalled and not yet seen back in the balancer
    draining: set[str] = field(default_factory=set)

    @property
    def direct(self) -> dict[str, str]:
        """{replica name: its own URL} (a DELETE must reach the replica that serves it)."""
        return {name: m.url for name, m in self.replicas.items()}

    def write_env(self, **changes: str) -> None:
        self.env.update(changes)
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in self.env.items()))

    async def states(self, http: aiohttp.ClientSession) -> dict[str, str]:
        """HAProxy's view: {replica: UP / DOWN ...}."""
        async with http.get(self.stats_url + ";csv") as r:
            text = await r.text()
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {row["svname"]: row["status"] for row in rows
                if row["pxname"] == "morpheus" and row["svname"] in self.replicas}

    async def wait_up(self, http: aiohttp.ClientSession, names: tuple[str, ...],
                      timeout_s: float = 60) -> float:
        """Seconds until HAProxy sees every one of `names` UP."""
        t0 = asyncio.get_running_loop().time()
        while True:
            try:
                states = await self.states(http)
                if all(states.get(n) == "UP" for n in names):
                    return asyncio.get_running_loop().time() - t0
            except aiohttp.ClientError:
                pass
            if asyncio.get_running_loop().time() - t0 > timeout_s:
                raise RuntimeError(f"HAProxy did not see {names} UP in {timeout_s:.0f} s")
            await asyncio.sleep(0.2)


async def start(stack: AsyncExitStack, out: Path, parallel_streams: int) -> Topology:
    """Everything up and warm: upstream and replicas at once, then the balancer."""
    binary = haproxy_binary()
    if binary is None:
        raise RuntimeError("haproxy is not installed (Debian: apt-get install haproxy)")
    upstream = await start_morpheus(stack, out, {
        "TTS_BACKEND": "espeak", "BACKENDS": "espeak", "FALLBACK_BACKEND": "",
        "PARALLEL_STREAMS": "64", "LOG_LEVEL": "WARNING"}, name="upstream", unset=UNSET)
    env_file = out / "replicas.env"
    env = {"TTS_BACKEND": "piper", "BACKENDS": "piper,espeak,openai_tts",
           "FALLBACK_BACKEND": "espeak", "OPENAI_TTS_BASE_URL": upstream.url + "/v1",
           "PARALLEL_STREAMS": str(parallel_streams), "QUEUE_MAX": str(2 * parallel_streams),
           "SHUTDOWN_GRACE_S": str(GRACE_S), "PLAYBACK_BUFFER_MS": "300",
           "UPSTREAM_BACKOFF_S": "2"}
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    wyoming = {"m1": free_port(), "m2": free_port()}
    m1, m2 = await asyncio.gather(*(
        start_morpheus(stack, out, {"WYOMING_URI": f"tcp://127.0.0.1:{port}",
                                    "LOG_LEVEL": "WARNING"},
                       name=name, env_file=env_file, unset=UNSET, timeout_s=180)
        for name, port in wyoming.items()))
    lb, stats = free_port(), free_port()
    lb_url, stats_url = f"http://127.0.0.1:{lb}", f"http://127.0.0.1:{stats}/stats"
    ports = {name: urlparse(m.url).port for name, m in (("m1", m1), ("m2", m2))}

    async def serving() -> bool:
        try:
            async with aiohttp.ClientSession() as s, s.get(
                    stats_url, timeout=aiohttp.ClientTimeout(2)) as r:
                return r.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False

    haproxy = await start_child(stack, out, "haproxy", [binary, "-db", "-f", str(HAPROXY_CFG)],
                                serving, env={"LB_BIND": f"127.0.0.1:{lb}",
                                              "LB_STATS_BIND": f"127.0.0.1:{stats}",
                                              "MORPHEUS_1": f"127.0.0.1:{ports['m1']}",
                                              "MORPHEUS_2": f"127.0.0.1:{ports['m2']}"})
    topo = Topology(out, upstream, {"m1": m1, "m2": m2}, wyoming, haproxy, lb_url, stats_url,
                    env_file, env)
    async with aiohttp.ClientSession() as http:
        await topo.wait_up(http, ("m1", "m2"))
    return topo


__all__ = ["GRACE_S", "Topology", "haproxy_binary", "start"]
