"""A real `morpheus serve` process on 127.0.0.1 for tests that drive it from outside
(property-based fuzzing, load): started with given settings, ended by its PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from server.config import field_names
from tests.ports import MorpheusPort

ROOT = Path(__file__).resolve().parent.parent


class LiveServer:
    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client()  # keep-alive, closed with the server

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))


@contextmanager
def live_server(tmp_path: Path, *, env_file: Path | None = None, args: Sequence[str] = (),
                **settings: object) -> Iterator[LiveServer]:
    """`morpheus serve` with `settings` as environment variables (nothing of the caller's
    Morpheus settings leaks in), `env_file` as its .env and `args` as extra flags, on a port
    it binds itself (`--port 0`, told back through `--port-file`)."""
    port_file = MorpheusPort(tmp_path)
    names = field_names()
    env = {k: v for k, v in os.environ.items() if k.lower() not in names}
    env.update({"PYTHONPATH": str(ROOT), "WEBRTC_HOST_ADDRESSES": "127.0.0.1",
                "OUTPUTS_DIR": str(tmp_path / "outputs"), "VOICES_DIR": str(tmp_path / "voices"),
                "LOG_LEVEL": "ERROR",
                **{k.upper(): str(v) for k, v in settings.items()}})
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "--env-file", str(env_file or ""), "serve",
         "--host", "127.0.0.1", *port_file.args, *args], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        port = port_file.wait(proc, timeout_s=60)
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start (exit {proc.poll()})")
            time.sleep(0.1)
        server = LiveServer(proc, port)
        yield server
    finally:
        if "server" in locals():
            server.http.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
