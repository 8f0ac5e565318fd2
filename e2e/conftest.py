"""Real-browser fixtures: a Morpheus server subprocess on 127.0.0.1 and Debian's Chromium."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, WebSocket, sync_playwright

from server.config import field_names
from tests.ports import MorpheusPort

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "test-output"
SCREENSHOTS = OUTPUT / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
SERVER_START_TIMEOUT_S = 90.0  # piper loads its voice before /healthz answers


@dataclass
class Server:
    """The Morpheus process under test."""

    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def set_backend(self, name: str) -> None:
        r = httpx.post(self.url + "/config", json={"tts_backend": name}, timeout=10)
        r.raise_for_status()

    def log_tail(self, n: int = 40) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])


def _server_env() -> dict[str, str]:
    # Settings come only from what this fixture sets: drop any Morpheus key of the caller's.
    names = field_names()
    env = {k: v for k, v in os.environ.items() if k.lower() not in names}
    env.update(
        TTS_BACKEND="piper",
        WEBRTC_HOST_ADDRESSES="127.0.0.1",
        LOG_LEVEL="INFO",
        MORPHEUS_ENV_FILE="",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p),
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="session")
def morpheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`python -m server.cli serve` in a temp dir (no .env), on a loopback port it binds."""
    cwd = tmp_path_factory.mktemp("morpheus-e2e")
    port = MorpheusPort(cwd)
    OUTPUT.mkdir(exist_ok=True)
    log_path = OUTPUT / "e2e-server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", *port.args],
            cwd=cwd, env=_server_env(), stdout=log, stderr=subprocess.STDOUT,
        )
    server = Server("", proc, log_path)
    try:
        try:
            server.url = f"http://127.0.0.1:{port.wait(proc, SERVER_START_TIMEOUT_S)}"
        except RuntimeError as e:
            pytest.fail(f"{e}:\n{server.log_tail()}")
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer /healthz:\n{server.log_tail()}")
            time.sleep(0.2)
        yield server
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)  # aiohttp's run_app shuts down cleanly on it
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


@pytest.fixture(autouse=True)
def _active_backend_is_piper(morpheus: Server) -> Iterator[None]:
    """Every test starts and ends on the default backend, whatever the previous one switched."""
    morpheus.set_backend("piper")
    yield
    morpheus.set_backend("piper")


# Module scope, not session: sync Playwright runs an event loop in this thread while it is
# open, and pytest-asyncio cannot start its own loops until it is closed again.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Tab:
    """A page plus everything it logged that a person would call a problem."""

    page: Page
    errors: list[str] = field(default_factory=list)
    offers: list[str] = field(default_factory=list)  # SDP offers sent, loopback candidates only
    sent: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)  # (t, url, JSON)

    def sent_of_type(self, kind: str) -> list[tuple[float, dict[str, Any]]]:
        """JSON messages of `type` the page sent over its WebSockets, with monotonic times."""
        return [(t, m) for t, _, m in self.sent if m.get("type") == kind]

    def assert_clean(self) -> None:
        assert self.errors == [], "console errors:\n" + "\n".join(self.errors)

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def wait_for(self, expression: str, timeout_s: float = 10.0, what: str = "") -> Any:
        """Poll a JS function until it returns something truthy.

        Not page.wait_for_function: that evaluates strings, which the pages' CSP forbids.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.page.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what or expression}")
            time.sleep(0.02)

    # In-page probes: timestamps are taken in the page every 5 ms, so Python's polling adds
    # no error. `window.__morpheus.level()` is the page's output level in dBFS.

    def arm_sound_probe(self, button: str, audible_dbfs: float) -> None:
        """After `button` is clicked, note when the output first exceeds `audible_dbfs`."""
        self.js(_SOUND_PROBE, {"button": button, "audible": audible_dbfs})

    def ms_to_sound(self, timeout_s: float = 10.0) -> float:
        self.wait_for("() => window.__probe.soundAt !== null", timeout_s, "audible output")
        return float(self.js("() => window.__probe.soundAt - window.__probe.clickedAt"))

    def arm_silence_probe(self, button: str, silent_dbfs: float, hold_ms: float = 150) -> None:
        """After `button` is clicked, note when the output went below `silent_dbfs` and stayed
        there for `hold_ms` (a pause between words is not the end), and the loudest level
        seen after that."""
        self.js(_SILENCE_PROBE, {"button": button, "silent": silent_dbfs, "hold": hold_ms})

    def ms_to_silence(self, timeout_s: float = 5.0) -> float:
        self.wait_for("() => window.__probe.silentAt !== null", timeout_s, "silence")
        return float(self.js("() => window.__probe.silentAt - window.__probe.clickedAt"))

    def loudest_since_silence(self) -> float:
        return float(self.js("() => window.__probe.loudAfter"))

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


_SOUND_PROBE = """({button, audible}) => {
  const p = (window.__probe = { clickedAt: null, soundAt: null });
  document.getElementById(button).addEventListener("click", () => {
    p.clickedAt = performance.now();
  }, { capture: true, once: true });
  const iv = setInterval(() => {
    if (p.clickedAt !== null && window.__morpheus.level() > audible) {
      p.soundAt = performance.now();
      clearInterval(iv);
    }
  }, 5);
}"""

_SILENCE_PROBE = """({button, silent, hold}) => {
  const p = (window.__probe = { clickedAt: null, quietSince: null, silentAt: null, loudAfter: -120 });
  document.getElementById(button).addEventListener("click", () => {
    p.clickedAt = performance.now();
  }, { capture: true, once: true });
  const iv = setInterval(() => {
    if (p.clickedAt === null) return;
    const now = performance.now();
    const level = window.__morpheus.level();
    if (p.silentAt === null) {
      if (level >= silent) p.quietSince = null;
      else if (p.quietSince === null) p.quietSince = now;
      else if (now - p.quietSince >= hold) p.silentAt = p.quietSince;
      return;
    }
    p.loudAfter = Math.max(p.loudAfter, level);
    if (now - p.silentAt > 10000) clearInterval(iv);
  }, 5);
}"""


@pytest.fixture
def open_tab(browser: Browser, morpheus: Server) -> Iterator[Callable[..., Tab]]:
    """`tab = open_tab("/agent", width=375, init_script=...)`: a fresh context per tab."""
    contexts = []

    def open_(path: str, *, width: int = 1280, height: int = 900,
              init_script: str | None = None) -> Tab:
        ctx = browser.new_context(viewport={"width": width, "height": height})
        ctx.grant_permissions(["microphone"], origin=morpheus.url)
        contexts.append(ctx)
        if init_script:
            ctx.add_init_script(init_script)
        page = ctx.new_page()
        tab = Tab(page)

        def on_console(msg: ConsoleMessage) -> None:
            if msg.type == "error":
                tab.errors.append(f"console: {msg.text} ({msg.location.get('url', '')})")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: tab.errors.append(f"pageerror: {exc}"))
        page.route("**/webrtc/offer", lambda route: tab.offers.append(loopback_only_offer(route)))

        def on_socket(ws: WebSocket) -> None:
            def on_frame(payload: str | bytes) -> None:
                if isinstance(payload, str):
                    tab.sent.append((time.monotonic(), ws.url, json.loads(payload)))

            ws.on("framesent", on_frame)

        page.on("websocket", on_socket)
        page.goto(morpheus.url + path)
        tab.wait_for("() => Boolean(window.__morpheus)", what="the page script to start")
        return tab

    yield open_
    for ctx in contexts:
        ctx.close()


def loopback_only_offer(route: Route) -> str:
    """Keep only 127.0.0.1 candidates in the browser's offer: tests stay on loopback."""
    body = json.loads(route.request.post_data or "{}")
    lines = body["sdp"].split("\r\n")
    kept = [ln for ln in lines if not ln.startswith("a=candidate") or " 127.0.0.1 " in ln]
    body["sdp"] = "\r\n".join(kept)
    route.continue_(post_data=json.dumps(body))
    return body["sdp"]
