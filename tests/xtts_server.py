"""A test server that speaks either XTTS server protocol on the wire, with real Piper speech.

`XttsTestServer(api="streaming-server")` answers as coqui-ai/xtts-streaming-server (99286c1):
`POST /tts_stream` (JSON with the speaker latents; 422 with FastAPI's `detail` list when a field
is wrong), `POST /clone_speaker` (multipart `wav_file` -> latents), `GET /studio_speakers`,
`GET /languages`. `XttsTestServer(api="api-server")` answers as xtts-api-server 0.9.0:
`GET /tts_stream?text=&speaker_wav=&language=`, `GET /speakers_list`, `GET /speakers`,
`GET /languages`. Both stream a 44-byte WAV header with zero frames (Python's `wave`, as both
servers write it) and then s16le PCM at 24 kHz, and serve `/openapi.json` as FastAPI does.
Latents are seeded random floats rounded through float16, `gpt_cond_latent` N x 1024 and
`speaker_embedding` 512 long; a clip's latents derive from its bytes, so a test can tell which
voice a request carried.

Standalone (for the benchmark): `python -m tests.xtts_server --port 8020 --api api-server`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import wave
from typing import Any

import numpy as np
from aiohttp import web

from tests import piper_speech
from tests.upstream_server import UpstreamTestServer, serve_forever

XTTS_RATE_HZ = 24_000
LATENT_ROWS = 32  # N varies with the reference clip (the repo's default speaker has 65)
STREAMING_LANGUAGES = ("en", "de", "fr", "es", "it", "pl", "pt", "tr", "ru", "nl", "cs", "ar",
                       "zh-cn", "ja", "hu", "ko", "hi")
API_LANGUAGES = {"Arabic": "ar", "Brazilian Portuguese": "pt", "Chinese": "zh-cn", "Czech": "cs",
                 "Dutch": "nl", "English": "en", "French": "fr", "German": "de", "Italian": "it",
                 "Polish": "pl", "Russian": "ru", "Spanish": "es", "Turkish": "tr",
                 "Japanese": "ja", "Korean": "ko", "Hungarian": "hu", "Hindi": "hi"}
STUDIO_SPEAKERS = ("Claribel Dervla", "Daisy Studious")
API_SPEAKERS = ("female_calm", "male_deep")


def zero_frame_header() -> bytes:
    """What both servers send first: `wave` writing no frames (RIFF size 36, data size 0)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(XTTS_RATE_HZ)
        w.writeframes(b"")
    return buf.getvalue()


def latents_for(seed_bytes: bytes) -> dict[str, Any]:
    """Deterministic latents (rounded through float16, as the server's `.half().tolist()`)."""
    seed = int.from_bytes(hashlib.sha256(seed_bytes).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((LATENT_ROWS, 1024)).astype(np.float16).astype(float)
    embedding = rng.standard_normal(512).astype(np.float16).astype(float)
    return {"gpt_cond_latent": latent.tolist(), "speaker_embedding": embedding.tolist()}


def latents_id(embedding: list[float]) -> str:
    """A short fingerprint of a speaker embedding, to match requests to voices."""
    return hashlib.sha256(np.asarray(embedding, dtype=np.float16).tobytes()).hexdigest()[:12]


class XttsTestServer(UpstreamTestServer):
    def __init__(self, *, api: str = "streaming-server", port: int = 0, rtf: float = 0.0,
                 chunk_ms: float = 200.0, cache: bool = False) -> None:
        super().__init__(port=port, rtf=rtf, chunk_ms=chunk_ms, cache=cache)
        if api not in ("streaming-server", "api-server"):
            raise ValueError(f"unknown XTTS api {api!r}")
        self.api = api
        self.studio = {name: latents_for(name.encode()) for name in STUDIO_SPEAKERS}
        self.clones: list[str] = []  # latents ids handed out by /clone_speaker, in order

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/languages", self.languages)
        app.router.add_get("/openapi.json", self.openapi)
        if self.api == "streaming-server":
            app.router.add_post("/tts_stream", self.stream_post)
            app.router.add_post("/clone_speaker", self.clone_speaker)
            app.router.add_get("/studio_speakers", self.studio_speakers)
        else:
            app.router.add_get("/tts_stream", self.stream_get)
            app.router.add_get("/speakers_list", self.speakers_list)
            app.router.add_get("/speakers", self.speakers)

    # -- shared routes

    async def languages(self, request: web.Request) -> web.Response:
        if self.api == "streaming-server":
            return web.json_response(list(STREAMING_LANGUAGES))
        return web.json_response({"languages": API_LANGUAGES})

    async def openapi(self, request: web.Request) -> web.Response:
        paths = [r.resource.canonical for r in request.app.router.routes()
                 if r.resource is not None and r.resource.canonical != "/openapi.json"]
        return web.json_response({"openapi": "3.0.2", "info": {"title": "XTTS", "version": "0"},
                                  "paths": {p: {} for p in paths}})

    # -- xtts-streaming-server

    async def studio_speakers(self, request: web.Request) -> web.Response:
        return web.json_response(self.studio)

    async def clone_speaker(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("wav_file")
        if not isinstance(upload, web.FileField):
            return _unprocessable(["body", "wav_file"], "field required", "value_error.missing")
        data = upload.file.read()
        self.record(request, {"wav_file": upload.filename, "bytes": len(data)})
        latents = latents_for(data)
        self.clones.append(latents_id(latents["speaker_embedding"]))
        return web.json_response(latents)

    async def stream_post(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return _unprocessable(["body"], "value is not a valid dict", "type_error.dict")
        errors = _validate_streaming_inputs(body)
        if errors:
            return web.json_response({"detail": errors}, status=422)
        rec = self.record(request, {**body, "speaker_embedding": latents_id(body["speaker_embedding"]),
                                    "gpt_cond_latent": len(body["gpt_cond_latent"])})
        fault = await self.injected_fault(request, "audio/wav")
        if fault is not None:
            return fault
        head = zero_frame_header() if body.get("add_wav_header", True) else b""
        return await self.stream_audio(request, rec, content_type="audio/wav", head=head,
                                       pcm=self.speak(body["text"], XTTS_RATE_HZ),
                                       rate_hz=XTTS_RATE_HZ)

    # -- xtts-api-server

    async def speakers_list(self, request: web.Request) -> web.Response:
        return web.json_response(list(API_SPEAKERS))

    async def speakers(self, request: web.Request) -> web.Response:
        return web.json_response([{"name": s, "voice_id": s,
                                   "preview_url": f"127.0.0.1:8020/sample/{s}.wav"}
                                  for s in API_SPEAKERS])

    async def stream_get(self, request: web.Request) -> web.StreamResponse:
        missing = [k for k in ("text", "speaker_wav", "language") if k not in request.query]
        if missing:
            return web.json_response({"detail": [
                {"type": "missing", "loc": ["query", k], "msg": "Field required", "input": None}
                for k in missing]}, status=422)
        rec = self.record(request)
        text, speaker, language = (request.query[k] for k in ("text", "speaker_wav", "language"))
        if language.lower() not in API_LANGUAGES.values():
            return web.json_response(
                {"detail": "Language code sent is either unsupported or misspelled."}, status=400)
        fault = await self.injected_fault(request, "audio/x-wav")
        if fault is not None:
            return fault
        # a name from its speakers folder, or a clip path it can read
        known = speaker in API_SPEAKERS or (speaker.endswith(".wav") and os.path.isabs(speaker)
                                            and await asyncio.to_thread(os.path.isfile, speaker))
        if not known:
            # The real server looks the speaker up inside its response generator: the 200 and
            # the headers are out when it fails, and the connection just ends.
            resp = web.StreamResponse(headers={"Content-Type": "audio/x-wav"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            assert request.transport is not None
            request.transport.abort()
            return resp
        return await self.stream_audio(request, rec, content_type="audio/x-wav",
                                       head=zero_frame_header(),
                                       pcm=self.speak(text, XTTS_RATE_HZ),
                                       rate_hz=XTTS_RATE_HZ)


def _unprocessable(loc: list[str], msg: str, type_: str) -> web.Response:
    return web.json_response({"detail": [{"loc": loc, "msg": msg, "type": type_}]}, status=422)


def _validate_streaming_inputs(body: Any) -> list[dict[str, Any]]:
    """StreamingInputs as pydantic 1 checks it (ints coerced to the string chunk size)."""
    if not isinstance(body, dict):
        return [{"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error.dict"}]
    errors = []

    def err(name: str, msg: str, type_: str) -> None:
        errors.append({"loc": ["body", name], "msg": msg, "type": type_})

    for name in ("speaker_embedding", "gpt_cond_latent", "text", "language"):
        if name not in body:
            err(name, "field required", "value_error.missing")
    emb, lat = body.get("speaker_embedding"), body.get("gpt_cond_latent")
    if emb is not None and not (isinstance(emb, list) and all(_num(x) for x in emb)):
        err("speaker_embedding", "value is not a valid list of floats", "type_error.float")
    if lat is not None and not (isinstance(lat, list) and all(
            isinstance(row, list) and all(_num(x) for x in row) for row in lat)):
        err("gpt_cond_latent", "value is not a valid list of lists", "type_error.list")
    elif isinstance(lat, list) and sum(len(r) for r in lat) % 1024:
        err("gpt_cond_latent", "cannot reshape to (-1, 1024)", "value_error")
    if "text" in body and not isinstance(body["text"], str):
        err("text", "str type expected", "type_error.str")
    if "language" in body and body["language"] not in STREAMING_LANGUAGES:
        err("language", "unexpected value; permitted: " + ", ".join(STREAMING_LANGUAGES),
            "value_error.const")
    chunk = body.get("stream_chunk_size", "20")
    if not (isinstance(chunk, (str, int)) and str(chunk).strip().isdigit()):
        err("stream_chunk_size", "invalid literal for int()", "value_error")
    if not isinstance(body.get("add_wav_header", True), bool):
        err("add_wav_header", "value could not be parsed to a boolean", "type_error.bool")
    return errors


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8020)
    parser.add_argument("--api", choices=("streaming-server", "api-server"),
                        default="streaming-server")
    parser.add_argument("--rtf", type=float, default=0.0, help="pace audio (x real time)")
    parser.add_argument("--chunk-ms", type=float, default=200.0)
    parser.add_argument("--cache", action="store_true",
                        help="replay the speech of a text asked before (benchmarks)")
    args = parser.parse_args()
    piper_speech.voice()  # load before listening, as the real servers load their model
    serve_forever(XttsTestServer(api=args.api, port=args.port, rtf=args.rtf,
                                 chunk_ms=args.chunk_ms, cache=args.cache))


if __name__ == "__main__":
    main()


__all__ = ["XttsTestServer", "latents_for", "latents_id", "zero_frame_header"]
