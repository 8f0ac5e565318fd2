"""An OpenAI-compatible speech server shaped like Kokoro-FastAPI, with Piper speech, for the
corners a second Morpheus does not show: an upstream that refuses `pcm`, an API key, a voice
list of bare names.

`POST /v1/audio/speech` (JSON `model`, `input`, `voice`, `response_format`, `speed`; 401 without
the right `Authorization: Bearer`; 400 for an unknown voice, or for `pcm` when `reject_pcm`);
`GET /v1/audio/voices` -> `{"voices": [names]}` as Kokoro-FastAPI answers; `GET /v1/models`.
Audio is encoded with dsp.encoders as it is made and streamed chunked.

Standalone (for the benchmark): `python -m tests.openai_server --port 8880`.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

from aiohttp import web

from dsp.encoders import CONTENT_TYPES, make_encoder
from tests import piper_speech
from tests.upstream_server import UpstreamTestServer, serve_forever

RATE_HZ = 24_000
VOICES = ("af_bella", "am_adam")


class OpenAITestServer(UpstreamTestServer):
    def __init__(self, *, api_key: str | None = None, reject_pcm: bool = False,
                 port: int = 0, rtf: float = 0.0, chunk_ms: float = 200.0,
                 cache: bool = False) -> None:
        super().__init__(port=port, rtf=rtf, chunk_ms=chunk_ms, cache=cache)
        self.api_key = api_key
        self.reject_pcm = reject_pcm

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/audio/speech", self.speech)
        app.router.add_get("/v1/audio/voices", self.voices)
        app.router.add_get("/v1/models", self.models)

    def _authorized(self, request: web.Request) -> bool:
        return self.api_key is None or request.headers.get("Authorization") == \
            f"Bearer {self.api_key}"

    async def models(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"detail": "Invalid API key"}, status=401)
        return web.json_response({"object": "list", "data": [{"id": "kokoro"}]})

    async def voices(self, request: web.Request) -> web.Response:
        return web.json_response({"voices": list(VOICES)})

    async def speech(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        rec = self.record(request, body)
        if not self._authorized(request):
            return web.json_response({"detail": "Invalid API key"}, status=401)
        fmt = body.get("response_format", "mp3")
        if body.get("voice") not in VOICES:
            return web.json_response({"detail": {"error": "Invalid request", "message":
                                                 f"Voice '{body.get('voice')}' not found"}},
                                     status=400)
        if fmt == "pcm" and self.reject_pcm:
            return web.json_response({"detail": "Unsupported response_format: pcm"}, status=400)
        fault = await self.injected_fault(request, CONTENT_TYPES.get(fmt, "audio/mpeg"))
        if fault is not None:
            return fault
        speed = float(body.get("speed", 1.0))
        speech = self.speak(str(body["input"]), RATE_HZ, length_scale=1.0 / speed)
        return await self.stream_audio(request, rec, content_type=CONTENT_TYPES[fmt], head=b"",
                                       pcm=_encoded(speech, fmt), rate_hz=RATE_HZ)


async def _encoded(pcm: AsyncIterator[bytes], fmt: str) -> AsyncIterator[bytes]:
    """Encode as the audio is made. (The server's per-chunk accounting then counts encoded
    bytes as if they were PCM; tests of this server do not rely on it.)"""
    enc = make_encoder(fmt, RATE_HZ, streaming=True)
    async for piece in pcm:
        out = enc.encode(piece)
        if out:
            yield out
    tail = enc.flush()
    if tail:
        yield tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8880)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--reject-pcm", action="store_true")
    parser.add_argument("--cache", action="store_true",
                        help="replay the speech of a text asked before (benchmarks)")
    args = parser.parse_args()
    piper_speech.voice()
    serve_forever(OpenAITestServer(api_key=args.api_key, reject_pcm=args.reject_pcm,
                                   port=args.port, cache=args.cache))


if __name__ == "__main__":
    main()
