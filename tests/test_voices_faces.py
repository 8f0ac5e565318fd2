"""One stored voice id on every face: /v1/audio/speech, /speak, the ElevenLabs HTTP route and
WebSocket, the native WebSocket and WebRTC sessions, and Wyoming (Home Assistant's list and
its synthesize). A preset is told by its backend and speed (the synthetic engine's length is
exact); a clone by the XTTS requests that carry its latents."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeVoice

from dsp.wav import WavReader
from tests.audio_check import pcm_stats
from tests.ports import listening_ports, new_listening_port
from tests.rtc_client import RtcClient
from tests.test_ws import connect
from tests.voice_clips import add_clone, add_preset
from tests.wyoming_client import client, read_reply
from tests.xtts_server import XttsTestServer

TEXT = "Hello from the voice library."
PRESET_S = len(TEXT) * 0.060 / 2.0  # the synthetic engine: 60 ms a character, at speed 2

Speak = Callable[[Any, str], Awaitable[tuple[str, bytes]]]  # (server, voice) -> (backend, pcm)


async def by_speech(srv: Any, voice: str) -> tuple[str, bytes]:
    async with srv.http.post(srv.url + "/v1/audio/speech", json={
            "input": TEXT, "voice": voice, "response_format": "pcm"}) as r:
        assert r.status == 200, await r.text()
        assert r.headers["X-Voice"] == voice and "X-Voice-Fallback" not in r.headers
        return r.headers["X-Backend"], await r.read()


async def by_legacy_speak(srv: Any, voice: str) -> tuple[str, bytes]:
    async with srv.http.post(srv.url + "/speak", json={"text": TEXT, "voice": voice}) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
        backend = r.headers["X-Backend"]
    async with srv.http.get(f"{srv.url}/{body['output_file']}") as r:
        reader = WavReader()
        return backend, reader.feed(await r.read())


async def by_elevenlabs_http(srv: Any, voice: str) -> tuple[str, bytes]:
    async with srv.http.post(f"{srv.url}/v1/text-to-speech/{voice}?output_format=pcm_24000",
                             json={"text": TEXT}) as r:
        assert r.status == 200, await r.text()
        assert r.headers["X-Voice"] == voice
        return r.headers["X-Backend"], await r.read()


async def by_elevenlabs_ws(srv: Any, voice: str) -> tuple[str, bytes]:
    url = f"{srv.url.replace('http', 'ws')}/v1/text-to-speech/{voice}/stream-input" \
          "?output_format=pcm_24000"
    pcm = b""
    async with srv.http.ws_connect(url) as ws:
        await ws.send_json({"text": " "})
        await ws.send_json({"text": TEXT + " "})
        await ws.send_json({"text": ""})
        async for msg in ws:
            data = json.loads(msg.data)
            assert "error" not in data, data
            pcm += base64.b64decode(data["audio"]) if data.get("audio") else b""
    return "", pcm  # the socket names no backend; the audio and the upstream tell


async def by_websocket_session(srv: Any, voice: str) -> tuple[str, bytes]:
    c = await connect(srv)
    await c.send(type="session.update", session={"voice": voice})
    updated = await c.next("session.updated")
    assert updated["session"]["voice"] == voice
    await c.send(type="input_text.append", text=TEXT)
    await c.send(type="input_text.done")
    done = await c.next("response.done", timeout=30)
    assert done["status"] == "completed", c.events
    await c.ws.close()
    return done["backend"], c.audio()


async def by_webrtc_session(srv: Any, voice: str) -> tuple[str, bytes]:
    c = RtcClient(srv.url, srv.http)
    await c.connect(with_mic=False)
    await c.next_event("session.created")
    c.send(type="session.update", session={"voice": voice})
    updated = await c.next_event("session.updated")
    assert updated["session"]["voice"] == voice
    c.send(type="input_text.append", text=TEXT)
    c.send(type="input_text.done")
    done = await c.next_event("response.done", timeout=30)
    await c.close()
    assert done["status"] == "completed"
    return done["backend"], b""  # 48 kHz Opus frames: the length is done["audio_ms"]


async def by_wyoming(port: int, voice: str) -> tuple[str, bytes]:
    async with client(port) as c:
        await c.write_event(Synthesize(text=TEXT, voice=SynthesizeVoice(name=voice)).event())
        heard = await read_reply(c)
    assert not heard.errors(), heard.errors()
    return "", bytes(heard.pcm)


@pytest.fixture
async def library_server(serve):
    """Active backend Piper; a preset on the synthetic engine and a clone through XTTS."""
    async with XttsTestServer(api="streaming-server") as xtts:
        before = listening_ports(os.getpid())
        srv = await serve(tts_backend="piper", backends="piper,espeak,synthetic,xtts",
                          xtts_url=xtts.url, wyoming_uri="tcp://127.0.0.1:0")
        port = new_listening_port(before, exclude={srv.port})
        status, _ = await add_preset(srv, name="Quick Buzz", backend="synthetic", voice="buzz",
                                     speed=2.0)
        assert status == 201
        status, _ = await add_clone(srv, "Grandpa")
        assert status == 201
        yield srv, port, xtts


FACES = [by_speech, by_legacy_speak, by_elevenlabs_http, by_elevenlabs_ws,
         by_websocket_session, by_webrtc_session]


async def test_a_preset_id_works_on_every_face(library_server) -> None:
    srv, port, xtts = library_server
    for face in FACES:
        backend, pcm = await face(srv, "quick-buzz")
        assert backend in ("synthetic", ""), face.__name__
        if pcm:  # the preset's engine and speed: exact length
            assert pcm_stats(pcm).duration_s == pytest.approx(PRESET_S, abs=0.05), face.__name__
    _, pcm = await by_wyoming(port, "quick-buzz")
    assert pcm_stats(pcm).duration_s == pytest.approx(PRESET_S, abs=0.05)
    assert xtts.audio_requests("/tts_stream") == []  # none of it went to the clone's engine


async def test_a_clone_id_works_on_every_face(library_server) -> None:
    srv, port, xtts = library_server
    for face in FACES:
        before = len(xtts.audio_requests("/tts_stream"))
        backend, pcm = await face(srv, "grandpa")
        assert backend in ("xtts", ""), face.__name__
        assert len(xtts.audio_requests("/tts_stream")) > before, face.__name__
        if pcm:
            assert pcm_stats(pcm).rms_dbfs > -35, face.__name__
    before = len(xtts.audio_requests("/tts_stream"))
    _, pcm = await by_wyoming(port, "grandpa")
    assert len(xtts.audio_requests("/tts_stream")) > before and pcm_stats(pcm).rms_dbfs > -35
    assert len(xtts.clones) == 1  # cloned once, whatever face asked
    assert {r.body["speaker_embedding"] for r in xtts.audio_requests("/tts_stream")} \
        == set(xtts.clones)


async def test_the_voice_lists_of_every_face_show_the_library(library_server) -> None:
    srv, port, _ = library_server
    async with srv.http.get(srv.url + "/v1/audio/voices") as r:
        body = await r.json()
    assert body["status"] == "ok" and body["backend"] == "piper"
    assert body["voices"][0] == "en_US-joe-medium"  # the backend's own first, as before
    assert body["voices"][-2:] == ["quick-buzz", "grandpa"]
    details = {d["id"]: d for d in body["voice_details"]}
    assert details["quick-buzz"]["backend"] == "synthetic" and details["quick-buzz"]["library"]
    assert details["grandpa"]["backend"] == "xtts" and details["grandpa"]["kind"] == "clone"
    for path in ("/v1/voices", "/v2/voices?page_size=100"):
        async with srv.http.get(srv.url + path) as r:
            voices = {v["voice_id"]: v for v in (await r.json())["voices"]}
        assert voices["quick-buzz"]["category"] == "generated"
        assert voices["grandpa"]["category"] == "cloned"
        assert voices["quick-buzz"]["settings"] == {"speed": 2.0}
    async with client(port) as c:
        await c.write_event(Describe().event())
        event = await c.read_event()
    assert event is not None
    listed = {v.name: v for v in Info.from_event(event).tts[0].voices}
    assert "en_US-joe-medium" in listed  # Home Assistant shows these by language
    assert listed["quick-buzz"].description == "Quick Buzz"
    assert listed["grandpa"].description == "Grandpa" and listed["grandpa"].languages == ["en"]


async def test_presets_set_defaults_the_request_may_override(serve) -> None:
    srv = await serve(tts_backend="piper")
    status, body = await add_preset(srv, name="Slow Joe", backend="piper", speed=0.7,
                                    description="for reading slowly")
    assert status == 201 and body["preset"]["speed"] == 0.7 and body["backend"] == "piper"

    async def seconds(**request: Any) -> tuple[float, dict[str, str]]:
        async with srv.http.post(srv.url + "/v1/audio/speech", json={
                "input": "One, two, three, four, five, six.", "response_format": "pcm",
                **request}) as r:
            assert r.status == 200, await r.text()
            return pcm_stats(await r.read()).duration_s, dict(r.headers)

    plain, _ = await seconds()
    slow, headers = await seconds(voice="slow-joe")
    fast, _ = await seconds(voice="slow-joe", speed=1.4)  # the request's speed wins
    assert headers["X-Voice"] == "slow-joe" and headers["X-Backend"] == "piper"
    assert slow / plain == pytest.approx(1 / 0.7, rel=0.15)
    assert fast / plain == pytest.approx(1 / 1.4, rel=0.15)

    status, _ = await add_preset(srv, name="Robot", backend="espeak", voice="en-gb")
    assert status == 201
    async with srv.http.post(srv.url + "/v1/audio/speech", json={
            "input": "Beep.", "voice": "robot", "response_format": "pcm"}) as r:
        assert r.status == 200 and r.headers["X-Backend"] == "espeak"
    async with srv.http.post(srv.url + "/v1/audio/speech", json={
            "input": "Beep.", "voice": "robot", "model": "piper"}) as r:
        assert r.status == 400
        err = await r.json()
    assert err["field"] == "voice" and "'espeak'" in err["error"]["message"]


async def test_a_stored_default_voice_is_the_default_on_every_face(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    await add_preset(srv, name="Quick", backend="synthetic", speed=2.0)
    async with srv.http.post(srv.url + "/config", json={"default_voice": "quick"}) as r:
        assert r.status == 200
    async with srv.http.post(srv.url + "/v1/audio/speech", json={
            "input": TEXT, "response_format": "pcm"}) as r:
        assert r.headers["X-Voice"] == "quick"
        assert pcm_stats(await r.read()).duration_s == pytest.approx(PRESET_S, abs=0.05)
