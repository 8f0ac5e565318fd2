"""Child processes the benchmark starts and what /proc says about them.

`ManagedProcess` is the one way the benchmark runs a child (Morpheus, the peers, upstreams,
HAProxy): started on 127.0.0.1 and a free port, waited for until it answers, signalled and
ended by its PID (SIGTERM, then SIGKILL), restartable with the same command. `ProcStats`
samples a PID's resident memory and CPU time while a phase runs; `Resources` reads its memory,
open file descriptors and threads at one moment.
"""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ManagedProcess:
    """A child process with a readiness check; `stop()` ends it by PID."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str] | None = None,
                 log_path: Path | None = None, unset: tuple[str, ...] = ()) -> None:
        """`env` on top of this process's environment, less the names in `unset`."""
        self.name = name
        self.argv = argv
        inherited = {k: v for k, v in os.environ.items() if k not in unset}
        self.env = {**inherited, "PYTHONPATH": str(REPO), **(env or {})}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def launch(self) -> None:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=REPO, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            if self.log_path:
                log.close()  # type: ignore[union-attr]  # the child holds its own copy

    async def start(self, ready: Callable[[], Awaitable[bool]], timeout_s: float = 120) -> None:
        """Launch, then poll `ready` until it says yes (or the process dies, or time runs out)."""
        self.launch()
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}"
                                   f"{_log_tail(self.log_path)}")
            if await ready():
                return
            await asyncio.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready in {timeout_s:.0f} s")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        """Send `sig` to the child by its PID (nothing if it has exited)."""
        if self.running:
            assert self.proc is not None
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL, and reap: a crash, as the chaos soak wants one."""
        if self.running:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    async def exited(self, timeout_s: float) -> int | None:
        """Wait (without blocking the loop) for the child to exit; its code, or None."""
        deadline = time.monotonic() + timeout_s
        while self.running and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        return None if self.proc is None else self.proc.poll()

    def stop(self, grace_s: float = 10) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def _log_tail(path: Path | None) -> str:
    if path is None or not path.exists():
        return ""
    return ":\n" + path.read_text(errors="replace")[-2000:]


async def tcp_ready(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def http_ready(url: str) -> bool:
    """GET `url` answers 200 (within 2 s)."""
    import aiohttp

    try:
        async with aiohttp.ClientSession() as s, s.get(url, timeout=aiohttp.ClientTimeout(2)) as r:
            return r.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return False


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


# --- /proc ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process and its reaped children (espeak-ng runs)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def fd_count(pid: int) -> int:
    """Open file descriptors (sockets, files, pipes) of a process."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def thread_count(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def fd_kinds(pid: int) -> dict[str, int]:
    """What a process's descriptors are: files by path, pipes, event fds, and TCP sockets by
    their ports and state (from /proc/net/tcp), so that a descriptor left open is named."""
    tcp: dict[str, str] = {}
    states = {"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "0A": "LISTEN"}
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            local, remote = int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16)
            tcp[f[9]] = f"tcp :{local}->:{remote} {states.get(f[3], f[3])}"
    out: dict[str, int] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            target = tcp.get(target[8:-1], "socket (not TCP)")
        elif target.startswith("pipe:"):
            target = "pipe"
        out[target] = out.get(target, 0) + 1
    return out


def thread_waits(pid: int, samples: int = 5, interval_s: float = 0.1) -> dict[str, int]:
    """A process's threads by what each is blocked in (the kernel's wait channel: `do_wait`
    is a thread waiting for a child process, `futex_wait_queue` an idle pool thread), the
    fewest of each over `samples` looks `interval_s` apart: a thread caught on the CPU for a
    moment (the loop answering the sampler) is not counted as running, a spinning one is."""
    fewest: dict[str, int] | None = None
    for i in range(samples):
        if i:
            time.sleep(interval_s)
        out: dict[str, int] = {}
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                wchan = Path(f"/proc/{pid}/task/{tid}/wchan").read_text().strip()
            except OSError:
                continue
            key = "running" if wchan in ("", "0") else wchan
            out[key] = out.get(key, 0) + 1
        fewest = out if fewest is None else {k: min(n, out.get(k, 0)) for k, n in fewest.items()}
    return {k: n for k, n in (fewest or {}).items() if n}


def children(pid: int) -> list[str]:
    """A process's live child processes, as `name (state)`."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:]
        state, ppid = rest.split()[:2]
        if int(ppid) == pid:
            out.append(f"{name} ({state})")
    return sorted(out)


@dataclass(frozen=True)
class Resources:
    """One process at one moment: resident memory (MB), open file descriptors, threads."""

    rss_mb: float
    fds: int
    threads: int

    @classmethod
    def of(cls, pid: int) -> Resources:
        return cls(rss_mb(pid), fd_count(pid), thread_count(pid))

    def peak(self, other: Resources) -> Resources:
        return Resources(max(self.rss_mb, other.rss_mb), max(self.fds, other.fds),
                         max(self.threads, other.threads))


@dataclass
class Usage:
    peak_rss_mb: float
    cpu_s: float
    wall_s: float

    def cpu_pct_per_stream(self, streams: int) -> float:
        return 100 * self.cpu_s / self.wall_s / max(1, streams) if self.wall_s else 0.0


class ProcStats:
    """`async with ProcStats(pid) as st: ...` then `st.usage`: peak RSS (sampled every 50 ms)
    and CPU time over the block. A None pid (a server given by URL) measures nothing."""

    def __init__(self, pid: int | None, period_s: float = 0.05) -> None:
        self.pid = pid
        self.period_s = period_s
        self.usage: Usage | None = None
        self._peak = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        assert self.pid is not None
        while True:
            self._peak = max(self._peak, rss_mb(self.pid))
            await asyncio.sleep(self.period_s)

    async def __aenter__(self) -> ProcStats:
        if self.pid is not None and _alive(self.pid):
            self._cpu0, self._t0 = cpu_seconds(self.pid), time.monotonic()
            self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is None or self.pid is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._peak = max(self._peak, rss_mb(self.pid))
        self.usage = Usage(self._peak, cpu_seconds(self.pid) - self._cpu0,
                           time.monotonic() - self._t0)


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").exists()


# --- the machine ---------------------------------------------------------------------------


def load_average() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text()
                      .splitlines() if line.startswith("MemTotal:"))
    except (OSError, StopIteration):
        mem_kb = 0
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1),
            "os": platform.platform(), "python": platform.python_version(), "gpu": _gpu()}


def _gpu() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


__all__ = ["CLK_TCK", "REPO", "ManagedProcess", "ProcStats", "Resources", "Usage", "children",
           "cpu_seconds",
           "fd_count", "fd_kinds", "free_port", "http_ready", "load_average", "machine", "python_module",
           "rss_mb", "tcp_ready", "thread_count", "thread_waits"]
