"""The servers under test: Morpheus (started here or given by URL) and the peers users pick.

Morpheus runs as `python -m server.cli serve` on 127.0.0.1 and a free port (`start_morpheus`,
the one way every part starts one); the peers run with the same Piper voice: Piper's own HTTP
server (`python -m piper.http_server`, needs flask) and wyoming-piper (`python -m wyoming_piper`,
the Home Assistant standard). All are `ManagedProcess`es, ended by PID when the part's exit
stack unwinds.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp

from bench.clients import (
    MorpheusHttp,
    MorpheusWebRtc,
    MorpheusWs,
    PiperHttpPeer,
    Subject,
    WyomingPiperPeer,
    WyomingTcp,
)
from bench.procs import ManagedProcess, free_port, http_ready, python_module

MORPHEUS_ENV = {"WEBRTC_HOST_ADDRESSES": "127.0.0.1"}  # loopback only, no STUN


@dataclass
class Morpheus:
    url: str
    pid: int | None
    started_here: bool
    env: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    adapters: list[dict[str, Any]] = field(default_factory=list)
    process: ManagedProcess | None = None  # when started here: signal, kill, restart

    @property
    def port(self) -> int:
        return int(urlparse(self.url).port or 80)

    async def restart(self, timeout_s: float = 120) -> None:
        """Start the same command again (same port, same settings) and wait until healthy."""
        assert self.process is not None
        await self.process.start(lambda: http_ready(self.url + "/healthz"), timeout_s)
        self.pid = self.process.pid

    @property
    def wyoming(self) -> tuple[str, int] | None:
        """(host, port) of the Wyoming face when the server runs one (WYOMING_URI)."""
        uri = self.config.get("wyoming_uri")
        if not uri or not str(uri).startswith("tcp://"):
            return None
        parsed = urlparse(str(uri))
        return parsed.hostname or "127.0.0.1", int(parsed.port or 10200)

    def subjects(self, http: aiohttp.ClientSession, backend: str) -> list[Subject]:
        """One subject per transport this server has, for `backend`."""
        subjects: list[Subject] = [
            MorpheusHttp(self.url, http, backend, self.pid),
            MorpheusWs(self.url, http, backend, self.pid),
            MorpheusWebRtc(self.url, http, backend, self.pid),
        ]
        if self.wyoming is not None:
            host, port = self.wyoming
            subjects.append(MorpheusWyoming(host, port, backend, self.pid, self.url, http))
        return subjects


class MorpheusWyoming(WyomingTcp):
    """Morpheus' Wyoming face speaks with the active backend: make it this one first."""

    def __init__(self, host: str, port: int, backend: str, pid: int | None, url: str,
                 http: aiohttp.ClientSession) -> None:
        super().__init__(host, port, backend, pid)
        self.url, self.http = url, http

    async def speak(self, text: str, *, first_audio_only: bool = False) -> Any:
        await set_active_backend(self.http, self.url, self.backend)
        return await super().speak(text, first_audio_only=first_audio_only)


async def set_active_backend(http: aiohttp.ClientSession, url: str, backend: str) -> None:
    async with http.get(url + "/config") as r:
        if (await r.json()).get("tts_backend") == backend:
            return
    async with http.post(url + "/config", json={"tts_backend": backend}) as r:
        r.raise_for_status()


async def start_morpheus(stack: AsyncExitStack, out: Path, env: dict[str, str], *,
                         name: str = "morpheus", env_file: Path | None = None,
                         timeout_s: float = 120, unset: tuple[str, ...] = ()) -> Morpheus:
    """`morpheus serve` on 127.0.0.1 and a free port with `env` on top of the defaults below
    (its Wyoming face on another free port), its log in OUT/<name>.log; `env_file` is the
    `.env` it reads and watches (none by default); `unset` names variables of this process's
    environment it must not inherit (settings the `.env` should decide). Stopped by PID when
    `stack` unwinds."""
    port = free_port()
    full_env = {**MORPHEUS_ENV, "OUTPUTS_DIR": str(out / f"{name}-outputs"),
                "WYOMING_URI": f"tcp://127.0.0.1:{free_port()}", **env}
    proc = ManagedProcess(name, python_module(
        "server.cli", "--env-file", str(env_file or ""), "serve", "--host", "127.0.0.1",
        "--port", str(port)), env=full_env, log_path=out / f"{name}.log", unset=unset)
    url = f"http://127.0.0.1:{port}"
    stack.callback(proc.stop)
    await proc.start(lambda: http_ready(url + "/healthz"), timeout_s)
    return Morpheus(url, proc.pid, True, full_env, process=proc)


async def start_child(stack: AsyncExitStack, out: Path, name: str, argv: list[str],
                      ready: Callable[[], Awaitable[bool]], env: dict[str, str] | None = None,
                      timeout_s: float = 120) -> ManagedProcess:
    """Any other child (an upstream, a balancer): started, waited for, ended by PID."""
    proc = ManagedProcess(name, argv, env=env, log_path=out / f"{name}.log")
    stack.callback(proc.stop)
    await proc.start(ready, timeout_s)
    return proc


async def wyoming_ready(port: int) -> bool:
    """The server on `port` answers Wyoming's `describe` (a TCP accept is not enough: the
    voice loads first)."""
    from wyoming.client import AsyncTcpClient
    from wyoming.info import Describe

    try:
        async with AsyncTcpClient("127.0.0.1", port) as c:
            await c.write_event(Describe().event())
            return await asyncio.wait_for(c.read_event(), 5) is not None
    except (OSError, asyncio.TimeoutError):
        return False


async def start_wyoming_piper(stack: AsyncExitStack, out: Path, voice: Path) -> tuple[
        ManagedProcess, int]:
    """wyoming-piper with `voice` on a free port, ready when it answers `describe`."""
    port = free_port()
    argv = python_module("wyoming_piper", "--voice", str(voice), "--data-dir",
                         str(voice.parent), "--uri", f"tcp://127.0.0.1:{port}")
    proc = await start_child(stack, out, "wyoming-piper", argv, lambda: wyoming_ready(port))
    return proc, port


async def describe(http: aiohttp.ClientSession, srv: Morpheus) -> None:
    async with http.get(srv.url + "/config") as r:
        srv.config = await r.json()
    async with http.get(srv.url + "/adapters") as r:
        srv.adapters = (await r.json())["adapters"]


# --- peers ---------------------------------------------------------------------------------


@dataclass
class Peer:
    subject: Subject
    command: list[str]
    version: str | None
    process: ManagedProcess


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


async def start_peers(stack: AsyncExitStack, http: aiohttp.ClientSession, voice: Path,
                      out: Path) -> tuple[list[Peer], list[dict[str, str]]]:
    """Start every peer that is installed (at once); the others are listed with the reason."""
    peers: list[Peer] = []
    skipped: list[dict[str, str]] = []
    starts = []
    if importlib.util.find_spec("flask") is None or importlib.util.find_spec("piper") is None:
        skipped.append({"peer": "piper.http_server", "reason": "flask is not installed "
                        "(pip install 'piper-tts[http]')"})
    else:
        port = free_port()
        argv = python_module("piper.http_server", "-m", str(voice), "--host", "127.0.0.1",
                             "--port", str(port))
        proc = ManagedProcess("piper.http_server", argv, log_path=out / "piper-http.log")
        stack.callback(proc.stop)
        url = f"http://127.0.0.1:{port}"
        starts.append(proc.start(lambda: http_ready(url + "/voices")))
        peers.append(Peer(PiperHttpPeer(url, http), argv, _version("piper-tts"), proc))
    if importlib.util.find_spec("wyoming_piper") is None:
        skipped.append({"peer": "wyoming-piper", "reason": "wyoming-piper is not installed"})
    else:
        port = free_port()
        argv = python_module("wyoming_piper", "--voice", str(voice), "--data-dir",
                             str(voice.parent), "--uri", f"tcp://127.0.0.1:{port}")
        proc = ManagedProcess("wyoming-piper", argv, log_path=out / "wyoming-piper.log")
        stack.callback(proc.stop)
        starts.append(proc.start(lambda: wyoming_ready(port)))
        peers.append(Peer(WyomingPiperPeer("127.0.0.1", port), argv,
                          _version("wyoming-piper"), proc))
    await asyncio.gather(*starts)
    for p in peers:
        p.subject.pid = p.process.pid
    return peers, skipped


__all__ = ["Morpheus", "MorpheusWyoming", "Peer", "describe", "set_active_backend",
           "start_child", "start_morpheus", "start_peers", "start_wyoming_piper",
           "wyoming_ready"]
