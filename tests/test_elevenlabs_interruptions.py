"""The two ways agent frameworks end an ElevenLabs context, replayed message for message.

pipecat 1.14 (`ElevenLabsTTSService`) and LiveKit's plugin 1.8.9 both send `close_context` at
the end of a turn and when the user barges in. Morpheus tells them apart by what came just
before on that context: a flush carrying no text ends a turn (finish the audio); anything else
is an interruption (stop the engine now). Each case asserts what the engine did after the
close, not only what the client received.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from server.app_keys import ORCHESTRATOR
from server.core.stream import Stream
from tests.test_elevenlabs_ws import audio_of, ws_url

SENTENCES = [f"This is sentence number {i} of a long reply that goes on for a while." for i in range(8)]
MS_PER_CHAR = 60.0  # the synthetic engine's pace
RTF = 3.0  # the synthetic engine makes audio three times faster than real time
CHUNK_MS = 200.0  # its chunk below sentence level: "one window"


def pipecat_init(cid: str) -> dict[str, Any]:
    return {"text": " ", "context_id": cid,
            "voice_settings": {"stability": 0.5, "similarity_boost": 0.75, "speed": 1.0}}


def livekit_init(cid: str) -> dict[str, Any]:
    return {"text": " ", "voice_settings": {}, "context_id": cid}


def livekit_url(srv) -> str:  # noqa: ANN001
    return ws_url(srv, "multi-stream-input", model_id="eleven_flash_v2_5",
                  output_format="pcm_24000", enable_ssml_parsing="false",
                  enable_logging="true", inactivity_timeout="20", apply_text_normalization="auto")


def pipecat_url(srv) -> str:  # noqa: ANN001
    return ws_url(srv, "multi-stream-input", model_id="eleven_flash_v2_5",
                  output_format="pcm_24000", auto_mode="true")


async def collect(ws: aiohttp.ClientWebSocketResponse, msgs: list[dict], *,
                  until_final: str, timeout: float = 30) -> None:
    """Read messages into `msgs` until `until_final`'s final arrives."""
    deadline = time.monotonic() + timeout
    while True:
        m = await ws.receive_json(timeout=max(0.1, deadline - time.monotonic()))
        msgs.append(m)
        if m.get("isFinal") and m.get("contextId") == until_final:
            return


async def first_audio(ws: aiohttp.ClientWebSocketResponse, msgs: list[dict], cid: str) -> None:
    while True:
        m = await ws.receive_json(timeout=20)
        msgs.append(m)
        if m.get("audio") and m.get("contextId") == cid:
            return


def live_stream(srv) -> Stream:  # noqa: ANN001
    streams = list(srv.app[ORCHESTRATOR].streams.values())
    assert len(streams) == 1, streams
    return streams[0]


async def gone(srv, stream: Stream, timeout: float = 5.0) -> float:  # noqa: ANN001
    """Wait for `stream` to leave the orchestrator; returns how long it took."""
    t0 = time.monotonic()
    while stream.id in srv.app[ORCHESTRATOR].streams:
        assert time.monotonic() - t0 < timeout, "the interrupted stream kept running"
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


def full_ms(sentences: list[str]) -> float:
    return sum(len(s) for s in sentences) * MS_PER_CHAR


def assert_whole(got_ms: float, sentences: list[str]) -> None:
    """Every sentence spoken: the engine's pace per character, less the seams' crossfades."""
    assert 0.9 * full_ms(sentences) <= got_ms <= 1.05 * full_ms(sentences), (got_ms, sentences)


async def assert_stopped_at_once(srv, stream: Stream, made_at_close: float) -> None:  # noqa: ANN001
    await gone(srv, stream)
    assert stream.status == "cancelled"
    # At most the chunk in flight (and one already queued) after the close: the engine stopped.
    assert stream.made_ms - made_at_close <= 2 * CHUNK_MS + 1, (stream.made_ms, made_at_close)


# --- pipecat 1.14 ---------------------------------------------------------------------------


async def test_pipecat_end_of_turn_finishes_the_audio(serve) -> None:
    srv = await serve(tts_backend="synthetic", synthetic_rtf=RTF * 4)
    text = SENTENCES[:2]
    async with srv.http.ws_connect(pipecat_url(srv)) as ws:
        await ws.send_json({"text": ""})  # a keep-alive before any context (pipecat does this)
        await ws.send_json(pipecat_init("t1"))
        for s in text:
            await ws.send_json({"text": s + " ", "context_id": "t1"})
        await ws.send_json({"context_id": "t1", "flush": True})  # on_turn_context_completed
        await ws.send_json({"context_id": "t1", "close_context": True})
        msgs: list[dict] = []
        await collect(ws, msgs, until_final="t1")
    assert not any(m.get("error") for m in msgs)
    assert_whole(len(audio_of(msgs, "t1")) / 48, text)


async def test_pipecat_interruption_mid_sentence_stops_the_engine(serve) -> None:
    srv = await serve(tts_backend="synthetic", synthetic_rtf=RTF)
    async with srv.http.ws_connect(pipecat_url(srv)) as ws:
        await ws.send_json(pipecat_init("t1"))
        for s in SENTENCES:
            await ws.send_json({"text": s + " ", "context_id": "t1"})
        await ws.send_json({"text": "And then", "context_id": "t1"})  # mid-sentence
        msgs: list[dict] = []
        await first_audio(ws, msgs, "t1")
        stream = live_stream(srv)
        await ws.send_json({"context_id": "t1", "close_context": True})  # on_audio_context_interrupted
        made = stream.made_ms
        await assert_stopped_at_once(srv, stream, made)
        await collect(ws, msgs, until_final="t1")
    assert len(audio_of(msgs, "t1")) / 48 < full_ms(SENTENCES) / 3


async def test_pipecat_interruption_after_the_turn_ended_stops_the_rest(serve) -> None:
    """The reply's text is all sent (flush + close: finish), then the user barges in while it
    is still being made: pipecat closes the context a second time."""
    srv = await serve(tts_backend="synthetic", synthetic_rtf=RTF)
    async with srv.http.ws_connect(pipecat_url(srv)) as ws:
        await ws.send_json(pipecat_init("t1"))
        for s in SENTENCES:
            await ws.send_json({"text": s + " ", "context_id": "t1"})
        await ws.send_json({"context_id": "t1", "flush": True})
        await ws.send_json({"context_id": "t1", "close_context": True})
        msgs: list[dict] = []
        await first_audio(ws, msgs, "t1")
        stream = live_stream(srv)
        await ws.send_json({"context_id": "t1", "close_context": True})
        made = stream.made_ms
        await assert_stopped_at_once(srv, stream, made)
        await collect(ws, msgs, until_final="t1")


# --- LiveKit 1.8.9 --------------------------------------------------------------------------


async def test_livekit_end_of_turn_finishes_the_audio(serve) -> None:
    srv = await serve(tts_backend="synthetic", synthetic_rtf=RTF * 4)
    text = SENTENCES[:3]
    async with srv.http.ws_connect(livekit_url(srv)) as ws:
        await ws.send_json(livekit_init("lk1"))
        for s in text:  # auto_mode: every sentence is flushed
            await ws.send_json({"text": s + " ", "context_id": "lk1", "flush": True})
        await ws.send_json({"text": "", "context_id": "lk1", "flush": True})
        await ws.send_json({"context_id": "lk1", "close_context": True})
        msgs: list[dict] = []
        await collect(ws, msgs, until_final="lk1")
    assert not any(m.get("error") for m in msgs)
    assert_whole(len(audio_of(msgs, "lk1")) / 48, text)


async def test_livekit_interruption_between_flushed_sentences_stops_the_engine(serve) -> None:
    """The case the issue measured: every sentence flushed, then close_context alone."""
    srv = await serve(tts_backend="synthetic", synthetic_rtf=RTF)
    async with srv.http.ws_connect(livekit_url(srv)) as ws:
        await ws.send_json(livekit_init("lk1"))
        for s in SENTENCES:
            await ws.send_json({"text": s + " ", "context_id": "lk1", "flush": True})
        msgs: list[dict] = []
        await first_audio(ws, msgs, "lk1")
        stream = live_stream(srv)
        await ws.send_json({"context_id": "lk1", "close_context": True})
        made = stream.made_ms
        await assert_stopped_at_once(srv, stream, made)
        await collect(ws, msgs, until_final="lk1")
    assert len(audio_of(msgs, "lk1")) / 48 < full_ms(SENTENCES) / 3


async def test_livekit_interruption_mid_sentence_stops_the_engine(serve) -> None:
    srv = await serve(tts_backend="synthetic", synthetic_rtf=RTF)
    async with srv.http.ws_connect(livekit_url(srv)) as ws:
        await ws.send_json(livekit_init("lk1"))
        await ws.send_json({"text": SENTENCES[0] + " ", "context_id": "lk1", "flush": True})
        msgs: list[dict] = []
        await first_audio(ws, msgs, "lk1")
        await ws.send_json({"text": "And the next one is", "context_id": "lk1"})
        stream = live_stream(srv)
        await ws.send_json({"context_id": "lk1", "close_context": True})
        made = stream.made_ms
        await assert_stopped_at_once(srv, stream, made)
        await collect(ws, msgs, until_final="lk1")


async def test_many_turns_on_one_socket_with_interruptions(serve) -> None:
    """Ten turns on one socket, alternating clients' habits: interrupted turns stop at once,
    finished turns speak in full, and interrupted contexts never pile up against the cap."""
    srv = await serve(tts_backend="synthetic", synthetic_rtf=RTF)
    orch = srv.app[ORCHESTRATOR]
    async with srv.http.ws_connect(livekit_url(srv)) as ws:
        for turn in range(10):
            cid = f"turn{turn}"
            msgs: list[dict] = []
            await ws.send_json(livekit_init(cid))
            if turn % 2:  # interrupted
                for s in SENTENCES:
                    await ws.send_json({"text": s + " ", "context_id": cid, "flush": True})
                await first_audio(ws, msgs, cid)
                stream = live_stream(srv)
                await ws.send_json({"context_id": cid, "close_context": True})
                made = stream.made_ms
                await assert_stopped_at_once(srv, stream, made)
                await collect(ws, msgs, until_final=cid)
            else:  # a short answer, finished
                await ws.send_json({"text": "Sure. ", "context_id": cid, "flush": True})
                await ws.send_json({"text": "", "context_id": cid, "flush": True})
                await ws.send_json({"context_id": cid, "close_context": True})
                await collect(ws, msgs, until_final=cid)
                assert_whole(len(audio_of(msgs, cid)) / 48, ["Sure."])
            assert not any(m.get("error") for m in msgs), msgs
        for _ in range(100):
            if not orch.streams:
                break
            await asyncio.sleep(0.02)
        assert not orch.streams


async def test_too_many_live_contexts_is_a_clear_error_and_the_socket_stays(serve) -> None:
    srv = await serve(tts_backend="synthetic", synthetic_rtf=0.5, parallel_streams=16)
    async with srv.http.ws_connect(livekit_url(srv)) as ws:
        for i in range(8):
            await ws.send_json(livekit_init(f"c{i}"))
            await ws.send_json({"text": SENTENCES[0] + " ", "context_id": f"c{i}"})
        await ws.send_json(livekit_init("c8"))
        await ws.send_json({"text": "One too many. ", "context_id": "c8"})
        err = None
        while err is None:
            m = await ws.receive_json(timeout=10)
            if m.get("error"):
                err = m
        assert err["contextId"] == "c8" and err["field"] == "context_id"
        assert "at most 8 open contexts" in err["message"]
        # Interrupting one frees its place at once: a new context is taken.
        await ws.send_json({"context_id": "c0", "close_context": True})
        await ws.send_json(livekit_init("c9"))
        await ws.send_json({"text": "Now there is room. ", "context_id": "c9", "flush": True})
        while True:
            m = await ws.receive_json(timeout=10)
            assert not (m.get("error") and m.get("contextId") == "c9"), m
            if m.get("audio") and m.get("contextId") == "c9":
                break
        await ws.send_json({"close_socket": True})


def test_the_rule_is_documented_where_the_face_is() -> None:
    import server.faces.elevenlabs.ws as face

    doc = face.__doc__ or ""
    assert "pipecat 1.14" in doc and "LiveKit" in doc and json.dumps("flush")[1:-1] in doc
