"""A server with API_KEY in a real Chromium: the page asks for the key once, keeps it for the
tab, and everything (HTTP, the WebSocket) works with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from conftest import OUTPUT
from playwright.sync_api import Browser, Dialog

from tests.ports import MorpheusPort

KEY = "e2e-secret"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from conftest import _server_env

    env = {**_server_env(), "API_KEY": KEY, "TTS_BACKEND": "synthetic"}
    OUTPUT.mkdir(exist_ok=True)
    cwd = tmp_path_factory.mktemp("keyed")
    port = MorpheusPort(cwd)
    with (OUTPUT / "e2e-keyed-server.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", *port.args],
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port.wait(proc, 60)}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        yield url
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_page_asks_for_the_key_once_and_keeps_it_for_the_tab(browser: Browser,
                                                                   keyed_server: str) -> None:
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        prompts: list[str] = []

        def on_dialog(dialog: Dialog) -> None:
            prompts.append(dialog.message)
            dialog.accept(KEY)

        page.on("dialog", on_dialog)
        page.goto(keyed_server + "/")
        page.wait_for_selector("#backend option >> nth=1", state="attached", timeout=15_000)
        assert len(prompts) == 1 and "API key" in prompts[0]
        assert page.evaluate("() => sessionStorage.getItem('morpheus.api_key')") == KEY
        page.fill("#text", "The key works for the WebSocket too.")
        page.click("#speak")
        deadline = time.monotonic() + 15
        while not page.evaluate("() => (window.__morpheus?.events || []).some("
                                "(e) => e.type === 'response.audio.started')"):
            assert time.monotonic() < deadline, "no audio over the keyed WebSocket"
            time.sleep(0.05)
        page.reload()  # same tab: no second prompt
        page.wait_for_selector("#backend option >> nth=1", state="attached", timeout=15_000)
        assert len(prompts) == 1
    finally:
        ctx.close()
