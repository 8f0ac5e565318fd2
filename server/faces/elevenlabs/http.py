"""ElevenLabs' text-to-speech HTTP routes over the orchestrator (reference/protocols.md 1.2-1.4).

    POST /v1/text-to-speech/{voice_id}                        the whole file
    POST /v1/text-to-speech/{voice_id}/stream                 audio bytes as they are made
    POST /v1/text-to-speech/{voice_id}/with-timestamps        one JSON object
    POST /v1/text-to-speech/{voice_id}/stream/with-timestamps newline-delimited JSON objects

Each request is one Morpheus stream: the same pacing, failover and metrics as
/v1/audio/speech. Streamed responses send their headers with the first audio, so a backend
that fails first is a clean JSON error; one that fails later cuts the body short.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from adapters.errors import BadRequest, MorpheusError
from server.app_keys import METRICS, ORCHESTRATOR, SETTINGS
from server.core.admission import Busy
from server.core.stream import Stream
from server.faces.elevenlabs.alignment import CharAligner, seconds_alignment
from server.faces.elevenlabs.api import (
    SpeechBody,
    SpeechQuery,
    error_response,
    from_validation,
    key_error,
    read_body,
    stream_spec,
    validation_error,
)
from server.faces.elevenlabs.dictionaries import DICTIONARIES
from server.faces.elevenlabs.formats import OutputFormat, parse_output_format
from server.faces.elevenlabs.frames import Frame, frames
from server.faces.elevenlabs.whole import send_audio, send_timestamps, spool_whole
from server.faces.writes import closer, send_within

log = logging.getLogger("morpheus.elevenlabs")
NDJSON = "application/x-ndjson"


async def _open(request: web.Request) -> tuple[Stream, SpeechBody, OutputFormat] | web.Response:
    """Check the key, the query and the body, and open the stream with the text in it."""
    denied = key_error(request)
    if denied is not None:
        return denied
    try:
        query = SpeechQuery.model_validate(dict(request.query))
    except ValidationError as e:
        return from_validation(e, "query")
    try:
        fmt = parse_output_format(query.output_format)
        body = await read_body(request)
    except BadRequest as e:
        if e.field == "body" and e.status == 400:
            return validation_error("body", None, str(e), "json_invalid")
        return error_response(e)
    except ValidationError as e:
        return from_validation(e, "body")
    limit = request.app[SETTINGS].current.max_input_chars
    if len(body.text) > limit:
        return validation_error("body", "text", f"text is {len(body.text)} characters; the "
                                f"limit is {limit} (MAX_INPUT_CHARS)", "string_too_long")
    try:
        lexicon = request.app[DICTIONARIES].entries(body.pronunciation_dictionary_locators)
        spec = stream_spec(voice_id=request.match_info["voice_id"], model_id=body.model_id,
                           voice_settings=body.voice_settings, language=body.language_code,
                           latency=query.optimize_streaming_latency,
                           normalization=body.apply_text_normalization, lexicon=lexicon,
                           transport="http")  # the bounded metrics label, as /v1/audio/speech
        stream = await request.app[ORCHESTRATOR].open(spec)
    except (MorpheusError, Busy) as e:
        return error_response(e)
    stream.push_text(body.text)
    stream.end_input()
    return stream, body, fmt


def _headers(stream: Stream, voice_id: str, fmt: OutputFormat, chars: int) -> dict[str, str]:
    headers = {"request-id": stream.id, "X-Request-ID": stream.id, "X-Backend": stream.backend,
               "X-Voice": stream.voice_id, "X-Degraded": "true" if stream.degraded else "false",
               "X-Sample-Rate": str(fmt.sample_rate_hz), "x-character-count": str(chars),
               "Cache-Control": "no-store"}
    if voice_id != stream.voice_id:
        headers["X-Voice-Fallback"] = f"{voice_id} -> {stream.voice_id}"
    return headers


async def _whole(request: web.Request, *, timestamps: bool) -> web.StreamResponse:
    opened = await _open(request)
    if isinstance(opened, web.Response):
        return opened
    stream, body, fmt = opened
    try:
        whole = await spool_whole(stream, fmt, body.text)
    except (MorpheusError, Busy) as e:
        return error_response(e)
    finally:
        await stream.aclose()
    headers = _headers(stream, request.match_info["voice_id"], fmt, len(body.text))
    try:
        if timestamps:
            return await send_timestamps(request, whole, headers)
        return await send_audio(request, whole, fmt.content_type, headers)
    finally:
        whole.audio.close()


async def _streamed(request: web.Request, *, timestamps: bool) -> web.StreamResponse:
    opened = await _open(request)
    if isinstance(opened, web.Response):
        return opened
    stream, body, fmt = opened
    try:
        return await _send_stream(request, stream, body, fmt, timestamps)
    finally:
        await stream.aclose()


async def _send_stream(request: web.Request, stream: Stream, body: SpeechBody,
                       fmt: OutputFormat, timestamps: bool) -> web.StreamResponse:
    parts = frames(stream, fmt.encoder(streaming=True), CharAligner(body.text)).__aiter__()
    try:
        first = await parts.__anext__()
    except (MorpheusError, Busy) as e:
        return error_response(e)
    resp = web.StreamResponse(headers=_headers(stream, request.match_info["voice_id"], fmt,
                                               len(body.text)))
    resp.content_type = NDJSON if timestamps else fmt.content_type
    resp.enable_chunked_encoding()
    await resp.prepare(request)

    timeout_s, metrics = request.app[SETTINGS].current.write_timeout_s, request.app[METRICS]

    async def send(frame: Frame) -> None:
        data = (_ndjson_line(frame) if frame.audio or frame.chars or frame.normalized else b""
                ) if timestamps else frame.audio
        if data:
            await send_within(resp.write(data), timeout_s, metrics, closer(request))

    try:
        await send(first)
        try:
            async for frame in parts:
                await send(frame)
        except MorpheusError as e:
            log.error("stream failed after headers: %s", e, extra={"request_id": stream.id})
            if request.transport is not None:  # a truncated body, not a clean end
                request.transport.close()
            return resp
        await resp.write_eof()
    except (ConnectionResetError, ConnectionError):
        log.info("client went away", extra={"request_id": stream.id, "backend": stream.backend})
    return resp


def _ndjson_line(frame: Frame) -> bytes:
    line: dict[str, Any] = {"audio_base64": base64.b64encode(frame.audio).decode(),
                            "alignment": seconds_alignment(frame.chars),
                            "normalized_alignment": seconds_alignment(frame.normalized)}
    return json.dumps(line).encode() + b"\n"


async def convert(request: web.Request) -> web.StreamResponse:
    return await _whole(request, timestamps=False)


async def convert_with_timestamps(request: web.Request) -> web.StreamResponse:
    return await _whole(request, timestamps=True)


async def stream_audio(request: web.Request) -> web.StreamResponse:
    return await _streamed(request, timestamps=False)


async def stream_with_timestamps(request: web.Request) -> web.StreamResponse:
    return await _streamed(request, timestamps=True)


def add_elevenlabs_routes(app: web.Application) -> None:
    """Every ElevenLabs-compatible route: text-to-speech, voices, models and the WebSockets."""
    from server.faces.elevenlabs.catalog import list_voices, list_voices_v2
    from server.faces.elevenlabs.dictionaries import add_dictionary_routes
    from server.faces.elevenlabs.voices import add_voice_routes
    from server.faces.elevenlabs.ws import multi_stream_input, stream_input

    base = "/v1/text-to-speech/{voice_id}"
    app.router.add_post(base, convert)
    app.router.add_post(f"{base}/stream", stream_audio)
    app.router.add_post(f"{base}/with-timestamps", convert_with_timestamps)
    app.router.add_post(f"{base}/stream/with-timestamps", stream_with_timestamps)
    app.router.add_get(f"{base}/stream-input", stream_input)
    app.router.add_get(f"{base}/multi-stream-input", multi_stream_input)
    app.router.add_get("/v1/voices", list_voices)
    app.router.add_get("/v2/voices", list_voices_v2)
    add_voice_routes(app)  # add, get, edit, delete: the voice library
    add_dictionary_routes(app)


__all__ = ["add_elevenlabs_routes"]
