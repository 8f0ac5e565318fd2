"""Limits that keep one client from holding the server: caps, idle and write timeouts, big
frames, and whole responses that never sit in memory."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from server.app_keys import METRICS, ORCHESTRATOR
from server.faces.realtime.webrtc import PEERS
from server.faces.sockets import WS_SOCKETS
from server.faces.whole_audio import SPOOL_RAM_BYTES, spool_response
from signaling.peer import create_offer, create_peer_connection
from tests.audio_check import read_wave


def metric(srv, name: str, **labels: str) -> float:  # noqa: ANN001
    value = srv.app[METRICS].registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def wait_until(cond, timeout_s: float = 10.0) -> None:  # noqa: ANN001
    for _ in range(int(timeout_s / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    assert cond()


async def test_websocket_connection_cap(serve) -> None:
    srv = await serve(tts_backend="synthetic", ws_max_connections=2)
    url = srv.url.replace("http", "ws") + "/v1/audio/speech/ws"
    a = await srv.http.ws_connect(url)
    b = await srv.http.ws_connect(url)
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await srv.http.ws_connect(url)
    assert info.value.status == 503
    assert metric(srv, "tts_refused_total", reason="ws_connections") == 1
    await a.close()
    await wait_until(lambda: len(srv.app[WS_SOCKETS]) == 1)  # its place is freed
    c = await srv.http.ws_connect(url)  # and usable again
    await c.close()
    await b.close()


async def test_webrtc_peer_cap(serve) -> None:
    srv = await serve(tts_backend="synthetic", webrtc_max_peers=1)
    pcs = []
    statuses = []
    for _ in range(2):
        pc = create_peer_connection()
        pc.addTransceiver("audio", direction="sendrecv")
        pc.createDataChannel("events")
        offer = await create_offer(pc, ["127.0.0.1"])
        async with srv.http.post(srv.url + "/webrtc/offer",
                                 json={"sdp": offer.sdp, "type": "offer"}) as r:
            statuses.append(r.status)
        pcs.append(pc)
    assert statuses == [200, 503]
    assert len(srv.app[PEERS].peers) == 1
    assert metric(srv, "tts_refused_total", reason="webrtc_peers") == 1
    for pc in pcs:
        await pc.close()


async def test_an_unfinished_websocket_input_is_ended_after_the_idle_timeout(serve) -> None:
    srv = await serve(tts_backend="synthetic", stream_input_timeout_s=0.5)
    async with srv.http.ws_connect(srv.url.replace("http", "ws") + "/v1/audio/speech/ws") as ws:
        await ws.receive_json()
        await ws.send_json({"type": "input_text.append", "text": "Hello there, I never finish"})
        done = None
        while done is None:
            msg = await ws.receive(timeout=10)
            if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data)["type"] == "response.done":
                done = json.loads(msg.data)
    assert done["status"] == "completed"  # what was said is spoken, then the slot frees
    assert not srv.app[ORCHESTRATOR].streams
    assert metric(srv, "tts_timeouts_total", kind="input_idle") == 1


async def test_a_client_that_stops_reading_is_closed_after_the_write_timeout(serve) -> None:
    srv = await serve(tts_backend="synthetic", write_timeout_s=1.0)
    host, port = srv.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = json.dumps({"input": "A long text for a client that never reads. " * 200,
                       "response_format": "pcm"}).encode()
    writer.write(b"POST /v1/audio/speech HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body)
    await writer.drain()
    # Never read: the server's socket buffers fill, its writes block, the timeout fires.
    await wait_until(lambda: metric(srv, "tts_timeouts_total", kind="write") == 1, 30)
    await wait_until(lambda: not srv.app[ORCHESTRATOR].streams)
    writer.close()


async def test_a_websocket_frame_over_the_protocol_limit_gets_an_error_event(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    async with srv.http.ws_connect(srv.url.replace("http", "ws") + "/v1/audio/speech/ws") as ws:
        await ws.receive_json()
        await ws.send_str(json.dumps({"type": "input_text.append", "text": "x" * (1 << 20)}))
        ev = await ws.receive_json(timeout=10)
        assert ev["type"] == "error" and "larger than" in ev["message"]
        await ws.send_json({"type": "input_text.append", "text": "Still here."})
        await ws.send_json({"type": "input_text.done"})
        got = []
        while "response.done" not in got:
            msg = await ws.receive(timeout=10)
            if msg.type == aiohttp.WSMsgType.TEXT:
                got.append(json.loads(msg.data)["type"])
        assert not ws.closed


async def test_delete_ends_a_websocket_response_as_cancelled(serve) -> None:
    srv = await serve(tts_backend="synthetic", synthetic_rtf=2.0)
    async with srv.http.ws_connect(srv.url.replace("http", "ws") + "/v1/audio/speech/ws") as ws:
        await ws.receive_json()
        await ws.send_json({"type": "input_text.append", "text": "Cancel me from outside. " * 5})
        await ws.send_json({"type": "input_text.done"})
        created = await ws.receive_json()
        assert created["type"] == "response.created"
        while (await ws.receive(timeout=10)).type != aiohttp.WSMsgType.BINARY:
            pass
        async with srv.http.delete(f"{srv.url}/v1/audio/speech/{created['response_id']}") as r:
            assert r.status == 200
        events = {}
        while "response.done" not in events:
            msg = await ws.receive(timeout=10)
            if msg.type == aiohttp.WSMsgType.TEXT:
                ev = json.loads(msg.data)
                events[ev["type"]] = ev
    assert events["response.done"]["status"] == "cancelled"
    assert "heard_text" in events["response.done"]


async def test_whole_responses_spool_to_disk_not_memory(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    orch = srv.app[ORCHESTRATOR]
    from server.core.stream import StreamSpec

    stream = await orch.open(StreamSpec())
    text = "Ninety seconds of audio go to a spool file, never into memory. " * 24
    stream.push_text(text)
    stream.end_input()
    try:
        spooled = await spool_response(stream, "wav")
    finally:
        await stream.aclose()
    try:
        assert spooled.size > SPOOL_RAM_BYTES
        assert spooled.spool._rolled  # type: ignore[attr-defined]  # it moved to a file
        data = b"".join([c async for c in spooled.chunks()])
    finally:
        spooled.close()
    rate, declared, pcm = read_wave(data)
    assert rate == 24000 and len(data) == spooled.size and declared * 2 == len(pcm)
    assert abs(len(pcm) / 48 - stream.audio_ms) < 1


async def test_stream_false_wav_has_true_sizes_and_content_length(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    async with srv.http.post(srv.url + "/v1/audio/speech",
                             json={"input": "A whole file, please.", "stream": False}) as r:
        assert r.status == 200
        data = await r.read()
        assert int(r.headers["Content-Length"]) == len(data)
    rate, declared, pcm = read_wave(data)
    assert rate == 24000 and declared * 2 == len(pcm) and abs(len(pcm) / 48 - len("A whole file, please.") * 60) < 60
