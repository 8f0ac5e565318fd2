"""SIGTERM while listeners are still hearing their answers: every transport finishes whole.

A real `morpheus serve` process on the synthetic engine at 20x real time (the engine finishes
long before the listener has heard the audio, as Piper does). Each client plays what it gets
at real time, the way a player does, and the server is signalled right after the first audio.
The response must be heard in full, the connection closed only after that (with a reason the
client can read), new work refused meanwhile, and the process must then exit by itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import time
from pathlib import Path

import aiohttp
from wyoming.audio import AudioStart
from wyoming.tts import Synthesize

from tests.live_server import live_server
from tests.ports import wait_listening
from tests.rtc_client import RtcClient
from tests.wyoming_client import Heard, client, read_reply

MS_PER_CHAR = 60.0  # the synthetic engine's pace
TEXT = ("The server is told to stop while this answer plays, and the listener still hears "
        "every word of it before the connection closes.")  # ~7 s of audio
SETTINGS = {"tts_backend": "synthetic", "backends": "synthetic", "fallback_backend": "",
            "synthetic_rtf": 20.0, "shutdown_grace_s": 30}


def expected_ms(text: str) -> float:
    return len(text) * MS_PER_CHAR


async def refused_meanwhile(http: aiohttp.ClientSession, url: str) -> None:
    """Once the signal is handled (/readyz says 503, within seconds), new work is refused."""
    deadline = time.monotonic() + 10
    while True:
        async with http.get(url + "/readyz") as r:
            if r.status == 503:
                break
            assert r.status == 200 and time.monotonic() < deadline, r.status
        await asyncio.sleep(0.02)
    async with http.post(url + "/v1/audio/speech", json={"input": "New work."}) as r:
        assert r.status == 503


async def exits(proc, timeout: float = 30) -> int:  # noqa: ANN001
    return await asyncio.to_thread(proc.wait, timeout)


async def test_websocket_response_is_played_out_before_the_socket_closes(tmp_path: Path) -> None:
    with live_server(tmp_path, **SETTINGS) as srv:
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(srv.ws_url + "/v1/audio/speech/ws") as ws:
            await ws.receive_json()  # session.created
            await ws.send_json({"type": "input_text.append", "text": TEXT})
            await ws.send_json({"type": "input_text.done"})
            got_ms, first_at, done = 0.0, None, None
            signalled = False
            last_report = 0.0
            while True:
                msg = await ws.receive(timeout=30)
                now = time.monotonic()
                if msg.type == aiohttp.WSMsgType.BINARY:
                    got_ms += len(msg.data) / 48
                    first_at = first_at or now
                    if not signalled:
                        srv.proc.send_signal(signal.SIGTERM)
                        signalled = True
                        await refused_meanwhile(http, srv.url)
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    ev = json.loads(msg.data)
                    if ev["type"] == "response.done":
                        done = ev
                else:
                    break  # closed by the server
                if first_at is not None and now - last_report > 0.1:
                    # a player: it plays at real time from the first audio
                    played = min(got_ms, 1000 * (now - first_at))
                    await ws.send_json({"type": "playback.report", "played_ms": played})
                    last_report = now
            closed_at = time.monotonic()
            assert ws.close_code == 1001
        assert done is not None and done["status"] == "completed"
        assert got_ms >= 0.9 * expected_ms(TEXT)
        # The socket stayed open until the listener had heard it all (not 0.5 s after SIGTERM).
        assert first_at is not None
        assert closed_at - first_at >= got_ms / 1000 - 0.3, (closed_at - first_at, got_ms)
        assert await exits(srv.proc) == 0


async def test_elevenlabs_contexts_are_played_out_before_the_socket_closes(tmp_path: Path) -> None:
    with live_server(tmp_path, **SETTINGS) as srv:
        url = (srv.ws_url + "/v1/text-to-speech/sine/multi-stream-input"
               "?output_format=pcm_24000")
        second = "And a second context, queued behind the first one, is heard in full too."
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            for cid, text in (("one", TEXT), ("two", second)):
                await ws.send_json({"text": " ", "context_id": cid})
                await ws.send_json({"text": text + " ", "context_id": cid})
                await ws.send_json({"context_id": cid, "flush": True})
                await ws.send_json({"context_id": cid, "close_context": True})
            audio = {"one": 0.0, "two": 0.0}
            finals: set[str] = set()
            first_at = None
            while True:
                msg = await ws.receive(timeout=30)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                m = json.loads(msg.data)
                assert not m.get("error"), m
                if m.get("audio"):
                    audio[m["contextId"]] += len(base64.b64decode(m["audio"])) / 48
                    if first_at is None:
                        first_at = time.monotonic()
                        srv.proc.send_signal(signal.SIGTERM)
                        await refused_meanwhile(http, srv.url)
                if m.get("isFinal"):
                    finals.add(m["contextId"])
            closed_at = time.monotonic()
            assert ws.close_code == 1001
        assert finals == {"one", "two"}
        assert audio["one"] >= 0.9 * expected_ms(TEXT)
        assert audio["two"] >= 0.9 * expected_ms(second)
        assert first_at is not None
        total_s = (audio["one"] + audio["two"]) / 1000
        assert closed_at - first_at >= total_s - 0.3, (closed_at - first_at, total_s)
        assert await exits(srv.proc) == 0


async def test_webrtc_response_is_played_out_before_the_peer_closes(tmp_path: Path) -> None:
    with live_server(tmp_path, **SETTINGS) as srv:
        async with aiohttp.ClientSession() as http:
            rtc = RtcClient(srv.url, http)
            await rtc.connect(with_mic=False)
            await rtc.next_event("session.created")
            rtc.send(type="input_text.append", text=TEXT)
            rtc.send(type="input_text.done")
            await rtc.next_event("response.audio.started", timeout=20)
            srv.proc.send_signal(signal.SIGTERM)
            await refused_meanwhile(http, srv.url)
            done = await rtc.next_event("response.done", timeout=30)
            shutdown = await rtc.next_event("error", timeout=30)
            voiced_ms = 20.0 * sum(1 for f in rtc.frames if f.dbfs > -45.0)
            await rtc.close()
        assert done["status"] == "completed"
        assert shutdown["code"] == "server_shutdown"
        assert voiced_ms >= 0.85 * expected_ms(TEXT), voiced_ms
        assert await exits(srv.proc) == 0


async def test_wyoming_reply_reaches_audio_stop(tmp_path: Path) -> None:
    with live_server(tmp_path, wyoming_uri="tcp://127.0.0.1:0", **SETTINGS) as srv:
        port = wait_listening(srv.proc, exclude={srv.port})  # the Wyoming face's
        async with aiohttp.ClientSession() as http, client(port) as c:
            await c.write_event(Synthesize(text=TEXT).event())
            heard = Heard()
            first = await c.read_event()
            assert first is not None and AudioStart.is_type(first.type)
            heard.start = AudioStart.from_event(first)
            srv.proc.send_signal(signal.SIGTERM)
            await refused_meanwhile(http, srv.url)
            heard = await read_reply(c, heard=heard)
        assert heard.types[-1] == "audio-stop"
        assert heard.seconds * 1000 >= 0.9 * expected_ms(TEXT)
        assert await exits(srv.proc) == 0


async def test_grace_over_closes_what_still_speaks_with_a_reason(tmp_path: Path) -> None:
    """A listener that would need longer than SHUTDOWN_GRACE_S is told why it is cut off."""
    slow = {**SETTINGS, "synthetic_rtf": 1.0, "shutdown_grace_s": 1}
    with live_server(tmp_path, **slow) as srv:
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(srv.ws_url + "/v1/audio/speech/ws") as ws:
            await ws.receive_json()
            await ws.send_json({"type": "input_text.append", "text": TEXT})
            await ws.send_json({"type": "input_text.done"})
            events = []
            signalled = False
            while True:
                msg = await ws.receive(timeout=30)
                if msg.type == aiohttp.WSMsgType.BINARY:
                    if not signalled:
                        srv.proc.send_signal(signal.SIGTERM)
                        signalled = True
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    events.append(json.loads(msg.data))
                else:
                    break
            assert ws.close_code == 1001
        types = [e["type"] for e in events]
        err = next(e for e in events if e["type"] == "error")
        assert err["code"] == "server_shutdown" and "SHUTDOWN_GRACE_S" in err["message"]
        done = next(e for e in events if e["type"] == "response.done")
        assert done["status"] == "cancelled" and "heard_text" in done, types
        assert await exits(srv.proc) == 0


async def test_an_idle_socket_is_closed_at_once_so_its_client_reconnects(tmp_path: Path) -> None:
    with live_server(tmp_path, **SETTINGS) as srv:
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(srv.ws_url + "/v1/audio/speech/ws") as ws:
            await ws.receive_json()
            t0 = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            events = []
            while True:
                msg = await ws.receive(timeout=10)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                events.append(json.loads(msg.data))
            assert ws.close_code == 1001
            assert time.monotonic() - t0 < 5
        assert [e["code"] for e in events if e["type"] == "error"] == ["server_shutdown"]
        assert await exits(srv.proc) == 0
