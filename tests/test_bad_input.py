"""Bad input answers a clear 4xx naming the field, never a 500 (issue 9's defects 2-4)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("backend", ["piper", "espeak"])
async def test_nul_and_lone_surrogates_are_cleaned_not_500(serve, backend: str) -> None:
    srv = await serve(tts_backend=backend)
    for text in ("hi \u0000 there", "\ud800 hello", "bell\u0007 ringing"):
        body = json.dumps({"input": text, "stream": False})  # json escapes the surrogate
        async with srv.http.post(f"{srv.url}/v1/audio/speech", data=body,
                                 headers={"Content-Type": "application/json"}) as r:
            assert r.status == 200, (text, await r.text())
            assert len(await r.read()) > 44 + 4800  # real audio, not an empty WAV


@pytest.mark.parametrize("text", ["\u0000\u0001\u0002", " \u0007 ", "...?!", "\ud800"])
async def test_nothing_speakable_is_400_naming_input(serve, text: str) -> None:
    srv = await serve(tts_backend="synthetic")
    body = json.dumps({"input": text})
    async with srv.http.post(f"{srv.url}/v1/audio/speech", data=body,
                             headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400, await r.text()
        err = await r.json()
        assert err["field"] == "input" and err["error"]["param"] == "input"


async def test_legacy_speak_rejects_unspeakable_text(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    async with srv.http.post(f"{srv.url}/speak", json={"text": "\u0000\u0001"}) as r:
        assert r.status == 400
        assert (await r.json())["field"] == "text"


async def test_websocket_unspeakable_response_is_a_bad_request_event(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    async with srv.http.ws_connect(f"{srv.url.replace('http', 'ws')}/v1/audio/speech/ws") as ws:
        await ws.receive_json()  # session.created
        await ws.send_json({"type": "input_text.append", "text": "\u0000 ... \u0001"})
        await ws.send_json({"type": "input_text.done"})
        events = []
        while True:
            ev = await ws.receive_json(timeout=10)
            events.append(ev)
            if ev["type"] == "response.done":
                break
        errors = [e for e in events if e["type"] == "error"]
        assert errors and errors[0]["code"] == "bad_request" and errors[0]["field"] == "text"
        assert events[-1]["status"] == "failed"
        # the connection stays usable
        await ws.send_json({"type": "input_text.append", "text": "Hello again."})
        await ws.send_json({"type": "input_text.done"})
        got_audio = False
        while True:
            msg = await ws.receive(timeout=10)
            if msg.type.name == "BINARY":
                got_audio = True
            elif json.loads(msg.data)["type"] == "response.done":
                break
        assert got_audio
