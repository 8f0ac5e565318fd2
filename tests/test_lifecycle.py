"""Readiness and the graceful drain: /readyz, SIGTERM while speaking, new streams refused."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from server.app_keys import ORCHESTRATOR
from server.lifecycle import drain, is_loopback
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


async def test_readyz_is_ready_once_a_backend_is_warm_and_503_while_draining(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    async with srv.http.get(srv.url + "/readyz") as r:
        assert r.status == 200 and (await r.json())["ready_backends"] == ["synthetic"]
    srv.app[ORCHESTRATOR].draining = True
    async with srv.http.get(srv.url + "/readyz") as r:
        assert r.status == 503 and (await r.json())["status"] == "draining"
    async with srv.http.get(srv.url + "/healthz") as r:
        assert r.status == 200  # alive, just not taking new work
    async with srv.http.post(srv.url + "/v1/audio/speech", json={"input": "Hello."}) as r:
        assert r.status == 503 and "Retry-After" in r.headers


async def test_readyz_is_not_ready_when_no_backend_can_load(serve) -> None:
    srv = await serve(tts_backend="snac_llamacpp", backends="snac_llamacpp", snac_model="")
    async with srv.http.get(srv.url + "/readyz") as r:
        assert r.status == 503 and (await r.json())["status"] == "warming"


async def test_drain_waits_for_running_streams_then_ends_the_rest(serve) -> None:
    srv = await serve(tts_backend="synthetic", synthetic_rtf=1.0)
    orch = srv.app[ORCHESTRATOR]
    async with srv.http.post(srv.url + "/v1/audio/speech",
                             json={"input": "A long sentence that takes a while. " * 10}) as r:
        await r.content.read(4800)
        assert len(orch.streams) == 1
        await drain(srv.app, grace_s=0.3)  # far shorter than the audio: it is cut
        assert not orch.streams
    assert orch.draining


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
    assert not is_loopback("example.com") and not is_loopback("")


async def test_sigterm_while_a_websocket_response_speaks(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WEBRTC_HOST_ADDRESSES": "127.0.0.1",
           "TTS_BACKEND": "synthetic", "SYNTHETIC_RTF": "1.5", "SHUTDOWN_GRACE_S": "30",
           "OUTPUTS_DIR": str(tmp_path / "out"), "LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(  # noqa: ASYNC220 (returns at once)
        [sys.executable, "-m", "server.cli", "--env-file", "", "serve", "--host", "127.0.0.1",
         "--port", str(port)], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(url + "/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            text = "This response is still speaking when the server is told to stop. " * 2
            async with http.ws_connect(url.replace("http", "ws") + "/v1/audio/speech/ws") as ws:
                await ws.receive_json()
                await ws.send_json({"type": "input_text.append", "text": text})
                await ws.send_json({"type": "input_text.done"})
                audio_ms = 0.0
                while audio_ms < 500:
                    msg = await ws.receive(timeout=10)
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        audio_ms += len(msg.data) / 48
                proc.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.3)
                async with http.get(url + "/readyz") as r:
                    assert r.status == 503  # the balancer stops sending traffic at once
                async with http.post(url + "/v1/audio/speech", json={"input": "New work."}) as r:
                    assert r.status == 503
                done = None
                while done is None:
                    msg = await ws.receive(timeout=30)
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        audio_ms += len(msg.data) / 48
                    elif msg.type == aiohttp.WSMsgType.TEXT:
                        ev = json.loads(msg.data)
                        if ev["type"] == "response.done":
                            done = ev
                    else:
                        raise AssertionError(f"socket ended before the response: {msg}")
            assert done["status"] == "completed"
            assert audio_ms > 0.9 * len(text) * 60  # all of it was heard, not cut
        rc = await asyncio.to_thread(proc.wait, 30)
        assert rc == 0, proc.stderr.read().decode() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
