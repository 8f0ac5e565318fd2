"""Loopback ports for the servers tests start, with no race for a port found free.

"Bind port 0, read the port, close the socket, hand the number to a child" loses the port
whenever another process (another suite on the machine, a client's ephemeral port) takes it
in between. Instead, every server here binds its own port or is handed a bound socket:

- `morpheus serve --port 0 --port-file PATH` writes the port it listens on: `MorpheusPort`.
- a program that takes an inherited listening socket (HAProxy's `bind fd@N`) gets one from
  `listening_socket()`;
- a program that only takes a port number binds port 0, and the port it got is read from
  the kernel's socket table: `wait_listening(pid)`, or `new_listening_port()` for a server
  in this process (the Wyoming face);
- an address where nothing listens is a port held bound, never listening: `refused_port()`
  (connecting is refused, and no other process can take it meanwhile); a killed server's
  port is held the same way until it comes back there: `Reserved`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Collection
from pathlib import Path

LISTEN = "0A"  # TCP state in /proc/net/tcp

_held: list[socket.socket] = []  # refused ports stay reserved until the test process ends


def listening_socket() -> socket.socket:
    """A TCP socket listening on 127.0.0.1 at a port the OS chose, inheritable by a child
    (`pass_fds`); the caller closes its copy once the child has it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def refused_port() -> int:
    """A loopback port that refuses connections for the rest of this process: bound (without
    SO_REUSEADDR, so nobody else can bind it) and never listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    _held.append(sock)
    return port_of(sock)


class Reserved:
    """Holds a port that a server gave up, so that it refuses connections and nobody else
    takes it until `release()`, just before the server binds it again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._sock: socket.socket | None = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # the server's closed connections may linger in TIME_WAIT on this port
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))

    def release(self) -> int:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        return self.port


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        entries = list(fd_dir.iterdir())
    except OSError:  # gone
        return inodes
    for entry in entries:
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process `pid` listens on (IPv4 and IPv6), from /proc."""
    inodes = _socket_inodes(pid)
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == LISTEN and cols[9] in inodes:
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def wait_listening(proc: subprocess.Popen[bytes] | int, *, exclude: Collection[int] = (),
                   timeout_s: float = 60.0) -> int:
    """The one port a process listens on besides `exclude`, once it listens (blocking)."""
    pid = proc if isinstance(proc, int) else proc.pid
    deadline = time.monotonic() + timeout_s
    while True:
        ports = listening_ports(pid) - set(exclude)
        if len(ports) == 1:
            return ports.pop()
        assert len(ports) < 2, f"process {pid} listens on several ports: {sorted(ports)}"
        if not isinstance(proc, int) and proc.poll() is not None:
            raise RuntimeError(f"process {pid} exited with {proc.returncode} before listening")
        if time.monotonic() > deadline:
            raise RuntimeError(f"process {pid} did not listen within {timeout_s} s")
        time.sleep(0.05)


def new_listening_port(before: Collection[int], *, exclude: Collection[int] = ()) -> int:
    """The one port this process listens on now and did not in `before` (its
    `listening_ports(os.getpid())` then), besides `exclude`: what an in-process server bound
    at port 0 got, when it does not say."""
    ports = listening_ports(os.getpid()) - set(before) - set(exclude)
    assert len(ports) == 1, f"not one new listening port: {sorted(ports)}"
    return ports.pop()


class MorpheusPort:
    """`morpheus serve --port 0 --port-file PATH`: the arguments, and the port once written."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / f"morpheus-port-{time.monotonic_ns()}"

    @property
    def args(self) -> list[str]:
        return ["--port", "0", "--port-file", str(self.path)]

    def wait(self, proc: subprocess.Popen[bytes], timeout_s: float = 90.0) -> int:
        """The port, once the server listens (blocking); fails if the process exits first."""
        deadline = time.monotonic() + timeout_s
        while not self.path.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"morpheus serve exited with {proc.returncode} before "
                                   "listening")
            if time.monotonic() > deadline:
                raise RuntimeError(f"morpheus serve did not listen within {timeout_s} s")
            time.sleep(0.05)
        return int(self.path.read_text())
