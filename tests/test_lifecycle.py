"""Readiness and the graceful drain: /readyz, SIGTERM while speaking, new streams refused."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import aiohttp

from server.app_keys import ORCHESTRATOR
from server.lifecycle import drain, is_loopback
from tests.live_server import live_server


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
    with live_server(tmp_path, tts_backend="synthetic", synthetic_rtf=1.5,
                     shutdown_grace_s=30) as srv:
        url, proc = srv.url, srv.proc
        async with aiohttp.ClientSession() as http:
            text = "This response is still speaking when the server is told to stop. " * 2
            async with http.ws_connect(srv.ws_url + "/v1/audio/speech/ws") as ws:
                await ws.receive_json()
                await ws.send_json({"type": "input_text.append", "text": text})
                await ws.send_json({"type": "input_text.done"})
                audio_ms = 0.0
                while audio_ms < 500:
                    msg = await ws.receive(timeout=10)
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        audio_ms += len(msg.data) / 48
                proc.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                while True:  # the balancer stops sending traffic at once: once it is handled
                    async with http.get(url + "/readyz") as r:
                        if r.status == 503:
                            break
                        assert r.status == 200 and time.monotonic() - signalled < 10
                    await asyncio.sleep(0.02)
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
        assert await asyncio.to_thread(proc.wait, 30) == 0
