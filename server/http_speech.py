"""HTTP speech routes: OpenAI /v1/audio/speech (streamed or whole), DELETE, legacy /speak, voices."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from datetime import datetime
from pathlib import Path

from aiohttp import web
from pydantic import ValidationError

from adapters import registry
from adapters.base import PIPELINE_RATE_HZ, Sampling
from adapters.errors import MorpheusError, TTSError
from dsp.encoders import CONTENT_TYPES, make_encoder
from dsp.wav import wav_file
from server.app_keys import BACKENDS, ORCHESTRATOR, SETTINGS
from server.errors import (
    MalformedBody,
    busy_response,
    from_morpheus,
    from_validation,
    json_error,
    read_json_object,
)
from server.orchestrator import Busy, Stream, StreamSpec
from server.requests import LegacySpeakRequest, SpeechRequest, speakable
from server.security import header_value
from server.stream import AudioOut, Degraded, Words

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
        "X-Voice": header_value(stream.voice),
        "Cache-Control": "no-store",
    }
    if requested_voice and requested_voice != stream.voice:
        headers["X-Voice-Fallback"] = header_value(f"{requested_voice} -> {stream.voice}")
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
    try:
        req = SpeechRequest.model_validate(await read_json_object(request))
    except MalformedBody as e:
        return from_morpheus(e)
    except ValidationError as e:
        return from_validation(e)
    settings = request.app[SETTINGS].current
    if len(req.input) > settings.max_input_chars:
        return json_error(413, f"input is {len(req.input)} characters; the limit is "
                          f"{settings.max_input_chars} (MAX_INPUT_CHARS)", field="input")
    spec = StreamSpec(
        backend=pick_backend(req.model, req.backend), voice=req.voice, speed=req.speed,
        low_latency=req.low_latency, language=req.language,
        sampling=Sampling(req.temperature, req.top_p, req.repetition_penalty),
        transport="http")
    opened = await open_stream(request, spec, req.input)
    if isinstance(opened, web.Response):
        return opened
    stream = opened
    try:
        if not req.stream:
            return await whole_response(stream, req)
        return await streamed_response(request, stream, req)
    finally:
        await stream.aclose()


async def collect_pcm(stream: Stream) -> bytes | web.Response:
    """All of a stream's audio, or the error response when it failed."""
    pcm = bytearray()
    try:
        async for ev in stream:
            if isinstance(ev, AudioOut):
                pcm += ev.pcm
    except MorpheusError as e:
        return from_morpheus(e)
    return bytes(pcm)


async def whole_response(stream: Stream, req: SpeechRequest) -> web.Response:
    """stream=false: the complete file with true sizes (WAV) and a Content-Length."""
    pcm = await collect_pcm(stream)
    if isinstance(pcm, web.Response):
        return pcm
    if req.response_format == "wav":
        data = wav_file(pcm, PIPELINE_RATE_HZ)
    else:
        enc = make_encoder(req.response_format, PIPELINE_RATE_HZ, streaming=False)
        data = await asyncio.to_thread(lambda: enc.encode(pcm) + enc.flush())
    return web.Response(body=data, content_type=CONTENT_TYPES[req.response_format],
                        headers=stream_headers(stream, req.voice, req.response_format))


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
    audio_bytes = 0

    async def send(data: bytes) -> None:
        nonlocal audio_bytes
        if not data:
            return
        audio_bytes += len(data)
        if sse:
            msg = {"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()}
            await resp.write(f"data: {json.dumps(msg)}\n\n".encode())
        else:
            await resp.write(data)

    async def send_words(ev: Words) -> None:
        if sse:  # an extra event beside OpenAI's: when each word is heard
            for w in ev.words:
                msg = {"type": "speech.word", "text": w.text, "start_ms": round(w.start_ms, 1),
                       "end_ms": round(w.end_ms, 1), "exact": w.exact}
                await resp.write(f"data: {json.dumps(msg)}\n\n".encode())

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
        except TTSError as e:
            log.error("stream failed after headers: %s", e, extra={"request_id": stream.id})
            if sse:
                err = {"type": "error", "error": {"message": str(e), "type": "engine_error"}}
                await resp.write(f"data: {json.dumps(err)}\n\n".encode())
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
            await resp.write(f"data: {json.dumps(done)}\n\n".encode())
        await resp.write_eof()
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


def output_path(outputs: Path, voice: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    safe = "".join(c for c in voice if c.isalnum() or c in "-_") or "voice"
    path = outputs / f"{safe}_{stamp}.wav"
    n = 1
    while path.exists():  # Orpheus overwrote same-second files; we keep both
        path = outputs / f"{safe}_{stamp}_{n}.wav"
        n += 1
    return path


def prune_outputs(outputs: Path, keep: int) -> None:
    files = sorted(outputs.glob("*.wav"), key=lambda p: p.stat().st_mtime)
    for old in files[: max(0, len(files) - keep)]:
        old.unlink(missing_ok=True)


async def legacy_speak(request: web.Request) -> web.Response:
    """POST /speak exactly as Orpheus-FastAPI answered: JSON pointing at /outputs/<file>.wav."""
    try:
        req = LegacySpeakRequest.model_validate(await read_json_object(request))
    except MalformedBody as e:
        return from_morpheus(e)
    except ValidationError as e:
        return from_validation(e)
    if not req.text or not req.text.strip():
        return web.json_response({"error": "Missing 'text'"}, status=400)
    try:
        text = speakable(req.text)
    except ValueError as e:
        return json_error(400, f"text: {e}", field="text")
    settings = request.app[SETTINGS].current
    if len(text) > settings.max_input_chars:
        return json_error(413, "text too long", field="text")
    t0 = time.perf_counter()
    opened = await open_stream(request, StreamSpec(voice=req.voice, transport="http"), text)
    if isinstance(opened, web.Response):
        return opened
    try:
        pcm = await collect_pcm(opened)
    finally:
        await opened.aclose()
    if isinstance(pcm, web.Response):
        return pcm
    outputs = settings.outputs_dir
    outputs.mkdir(parents=True, exist_ok=True)
    path = output_path(outputs, req.voice)
    await asyncio.to_thread(path.write_bytes, wav_file(pcm, PIPELINE_RATE_HZ))
    await asyncio.to_thread(prune_outputs, outputs, settings.outputs_max_files)
    return web.json_response({
        "status": "ok", "voice": req.voice, "output_file": f"outputs/{path.name}",
        "generation_time": round(time.perf_counter() - t0, 2),
    }, headers={"X-Backend": opened.backend, "X-Request-ID": opened.id})


async def serve_output(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    outputs = request.app[SETTINGS].current.outputs_dir.resolve()
    path = (outputs / name).resolve()
    if path.parent != outputs or not path.is_file():
        return json_error(404, "no such output file", field="name")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


async def voices(request: web.Request) -> web.Response:
    """Orpheus-FastAPI's {"status","voices":[ids]} plus per-voice details in `voice_details`."""
    settings = request.app[SETTINGS].current
    pool = request.app[BACKENDS]
    name = request.query.get("backend") or settings.tts_backend
    try:
        pool.validate_name(name)
        adapter = pool.instance(name)
        if not adapter.voices():
            adapter = await pool.ready(name)
    except MorpheusError as e:
        return from_morpheus(e)
    listed = adapter.voices()
    if not listed:
        return web.json_response({"detail": "No voices available"}, status=404)
    return web.json_response({
        "status": "ok", "backend": name, "default": adapter.default_voice(),
        "voices": [v.id for v in listed],
        "voice_details": [v.__dict__ for v in listed],
    })


async def models(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS].current
    ids = ["tts-1", "tts-1-hd", "orpheus", *settings.enabled_backends]
    return web.json_response({"object": "list", "data": [
        {"id": i, "object": "model", "owned_by": "morpheus"} for i in ids]})


def add_speech_routes(app: web.Application) -> None:
    app.router.add_post("/v1/audio/speech", speech)
    app.router.add_delete("/v1/audio/speech/{request_id}", cancel_speech)
    app.router.add_get("/v1/audio/voices", voices)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/speak", legacy_speak)
    app.router.add_get("/outputs/{name}", serve_output)
