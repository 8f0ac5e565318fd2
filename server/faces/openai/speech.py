"""HTTP speech routes: OpenAI /v1/audio/speech (streamed or whole), DELETE, legacy /speak, voices."""

from __future__ import annotations

import base64
import json
import logging

from aiohttp import web

from adapters import registry
from adapters.base import PIPELINE_RATE_HZ, Sampling
from adapters.errors import MorpheusError, TTSError
from dsp.encoders import CONTENT_TYPES, make_encoder
from server.app_keys import METRICS, ORCHESTRATOR, SETTINGS
from server.core.admission import Busy
from server.core.events import AudioOut, Degraded, Words
from server.core.stream import Stream, StreamSpec
from server.errors import (
    busy_response,
    from_morpheus,
    json_error,
    read_request,
)
from server.faces.openai.requests import SpeechRequest
from server.faces.whole_audio import spool_response
from server.faces.writes import closer, send_within
from server.security import header_value

log = logging.getLogger("morpheus.http")


def pick_backend(model: str, backend: str | None) -> str | None:
    """`backend` wins; a backend name as `model` selects it; any other model name (tts-1,
    tts-1-hd, orpheus, ...) means the active backend, so clients configured for OpenAI or
    Orpheus-FastAPI work whatever engine is configured."""
    if backend:
        return backend
    return model if model in registry.BACKENDS else None


def stream_headers(stream: Stream, requested_voice: str | None, fmt: str) -> dict[str, str]:
    headers = {
        "X-Request-ID": stream.id,
        "X-Backend": stream.backend,
        "X-Sample-Rate": str(48000 if fmt == "opus" else PIPELINE_RATE_HZ),
        "X-Degraded": "true" if stream.degraded else "false",
        "X-Voice": header_value(stream.voice_id),
        "Cache-Control": "no-store",
    }
    if requested_voice and requested_voice != stream.voice_id:
        headers["X-Voice-Fallback"] = header_value(f"{requested_voice} -> {stream.voice_id}")
    return headers


async def open_stream(request: web.Request, spec: StreamSpec, text: str) -> Stream | web.Response:
    orch = request.app[ORCHESTRATOR]
    try:
        stream = await orch.open(spec)
    except Busy as e:
        return busy_response(e)
    except MorpheusError as e:
        return from_morpheus(e)
    stream.push_text(text)
    stream.end_input()
    return stream


async def speech(request: web.Request) -> web.StreamResponse:
    req = await read_request(request, SpeechRequest)
    if isinstance(req, web.Response):
        return req
    settings = request.app[SETTINGS].current
    if len(req.input) > settings.max_input_chars:
        return json_error(413, f"input is {len(req.input)} characters; the limit is "
                          f"{settings.max_input_chars} (MAX_INPUT_CHARS)", field="input")
    spec = StreamSpec(
        backend=pick_backend(req.model, req.backend), voice=req.voice, speed=req.speed,
        low_latency=req.low_latency, language=req.language,
        sampling=Sampling(req.temperature, req.top_p, req.repetition_penalty),
        transport="http", normalize=req.normalize,
        lexicon=tuple(p.entry() for p in req.lexicon))
    opened = await open_stream(request, spec, req.input)
    if isinstance(opened, web.Response):
        return opened
    stream = opened
    try:
        if not req.stream:
            return await whole_response(request, stream, req)
        return await streamed_response(request, stream, req)
    finally:
        await stream.aclose()


async def whole_response(request: web.Request, stream: Stream,
                         req: SpeechRequest) -> web.StreamResponse:
    """stream=false: the complete file with true sizes (WAV) and a Content-Length, spooled
    to disk past a few MB so that hours of audio never sit in memory."""
    try:
        spooled = await spool_response(stream, req.response_format)
    except MorpheusError as e:
        return from_morpheus(e)
    try:
        resp = web.StreamResponse(headers=stream_headers(stream, req.voice, req.response_format))
        resp.content_type = CONTENT_TYPES[req.response_format]
        resp.content_length = spooled.size
        await resp.prepare(request)
        settings, metrics = request.app[SETTINGS].current, request.app[METRICS]
        async for data in spooled.chunks():
            await send_within(resp.write(data), settings.write_timeout_s, metrics,
                              closer(request))
        await resp.write_eof()
    except ConnectionError:
        log.info("client went away", extra={"request_id": stream.id, "backend": stream.backend})
    finally:
        spooled.close()
    return resp


async def streamed_response(request: web.Request, stream: Stream,
                            req: SpeechRequest) -> web.StreamResponse:
    """Headers go out with the first audio, so a backend that fails first is a clean 503."""
    sse = req.stream_format == "sse"
    events = stream.__aiter__()
    first: AudioOut | None = None
    early: list[Words] = []  # word timings come before the audio that speaks them
    try:
        async for ev in events:
            if isinstance(ev, AudioOut):
                first = ev
                break
            if isinstance(ev, Words):
                early.append(ev)
    except MorpheusError as e:
        return from_morpheus(e)
    if first is None:
        return from_morpheus(TTSError("no audio was produced", backend=stream.backend))
    resp = web.StreamResponse(headers=stream_headers(stream, req.voice, req.response_format))
    resp.content_type = "text/event-stream" if sse else CONTENT_TYPES[req.response_format]
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    enc = make_encoder(req.response_format, PIPELINE_RATE_HZ, streaming=True)
    timeout_s = request.app[SETTINGS].current.write_timeout_s
    metrics, close = request.app[METRICS], closer(request)

    async def write(data: bytes) -> None:
        await send_within(resp.write(data), timeout_s, metrics, close)

    async def send(data: bytes) -> None:
        if not data:
            return
        if sse:
            msg = {"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()}
            await write(f"data: {json.dumps(msg)}\n\n".encode())
        else:
            await write(data)

    async def send_words(ev: Words) -> None:
        if sse:  # an extra event beside OpenAI's: when each word is heard
            for w in ev.words:
                msg = {"type": "speech.word", "text": w.text, "start_ms": round(w.start_ms, 1),
                       "end_ms": round(w.end_ms, 1), "exact": w.exact}
                await write(f"data: {json.dumps(msg)}\n\n".encode())

    try:
        for ev in early:
            await send_words(ev)
        await send(enc.encode(first.pcm))
        try:
            async for ev in events:
                if isinstance(ev, AudioOut):
                    await send(enc.encode(ev.pcm))
                elif isinstance(ev, Words):
                    await send_words(ev)
                elif isinstance(ev, Degraded):
                    log.warning("degraded mid-stream", extra={"request_id": stream.id,
                                                              "backend": ev.to_backend})
        except MorpheusError as e:
            log.error("stream failed after headers: %s", e, extra={"request_id": stream.id})
            if sse:
                err = {"type": "error", "error": {"message": str(e), "type": "engine_error"}}
                await write(f"data: {json.dumps(err)}\n\n".encode())
            # Cut the chunked body short: the client sees a truncated transfer, not a clean end.
            if request.transport is not None:
                request.transport.close()
            return resp
        await send(enc.flush())
        if sse:
            done = {"type": "speech.audio.done",
                    "usage": {"input_tokens": len(req.input), "output_tokens": 0,
                              "total_tokens": len(req.input)},
                    "audio_ms": round(stream.audio_ms, 1), "degraded": stream.degraded}
            await write(f"data: {json.dumps(done)}\n\n".encode())
        await send_within(resp.write_eof(), timeout_s, metrics, close)
    except (ConnectionResetError, ConnectionError):
        log.info("client went away", extra={"request_id": stream.id, "backend": stream.backend})
    return resp


async def cancel_speech(request: web.Request) -> web.Response:
    """DELETE /v1/audio/speech/{request_id}: end that stream now (barge-in over HTTP)."""
    stream = request.app[ORCHESTRATOR].get(request.match_info["request_id"])
    if stream is None:
        return json_error(404, "no running stream with that id", field="request_id")
    # HTTP cannot see playback: model it as real time since the first audio, at most what
    # was delivered (a client that buffered more had not played it yet).
    played = max(0.0, stream.audio_ms - max(0.0, stream.observer.buffer_ms()))
    delivered = stream.interrupt()
    return web.json_response({"status": "cancelled", "request_id": stream.id,
                              "delivered_ms": round(delivered, 1),
                              "played_ms": round(played, 1),
                              "heard_text": stream.heard_text(played)})


async def models(request: web.Request) -> web.Response:
    """OpenAI's model list (GET /v1/models; app wiring sends ElevenLabs clients elsewhere)."""
    settings = request.app[SETTINGS].current
    ids = ["tts-1", "tts-1-hd", "orpheus", *settings.enabled_backends]
    return web.json_response({"object": "list", "data": [
        {"id": i, "object": "model", "owned_by": "morpheus"} for i in ids]})


def add_speech_routes(app: web.Application) -> None:
    app.router.add_post("/v1/audio/speech", speech)
    app.router.add_delete("/v1/audio/speech/{request_id}", cancel_speech)
