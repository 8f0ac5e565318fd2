"""A test server that speaks Coqui TTS `tts-server` on the wire (coqui-tts 0.28), with Piper.

`GET|POST /api/tts`: each parameter from a request header first (`text`, `speaker-id`,
`language-id`), else from the query or form (`text`, `speaker_id`, `language_id`), never from
a JSON body; blank text -> 400 `{"error": "Text parameter is required"}`; a speaker or language
the model does not have -> 500 `{"error": "TTS synthesis failed: ..."}`; speaker and language
are ignored for single-speaker / monolingual models, as the real server does. Requests are
served one at a time (the server holds a lock), the whole WAV is made first and then sent with
its true sizes and a Content-Length, at the model's rate (Piper's 22050 Hz here). The
MaryTTS routes `/voices` and `/locales` list speakers and the locale as plain text lines.

Standalone (for the benchmark): `python -m tests.coqui_server --port 5002`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import wave
from collections.abc import AsyncIterator

from aiohttp import web

from tests import piper_speech
from tests.upstream_server import UpstreamTestServer, serve_forever


def wav_bytes(pcm: bytes, rate_hz: int) -> bytes:
    """A complete WAV as the server's writer makes it (44-byte header, true sizes)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        w.writeframes(pcm)
    return buf.getvalue()


class CoquiTestServer(UpstreamTestServer):
    def __init__(self, *, speakers: tuple[str, ...] | None = ("p225", "p226"),
                 languages: tuple[str, ...] | None = None, model_name: str =
                 "tts_models/en/vctk/vits", port: int = 0, rtf: float = 0.0,
                 chunk_ms: float = 200.0, cache: bool = False) -> None:
        super().__init__(port=port, rtf=rtf, chunk_ms=chunk_ms, cache=cache)
        self.speakers = speakers  # None: a single-speaker model
        self.languages = languages  # None: a monolingual model
        self.model_name = model_name
        self.rate_hz = piper_speech.piper_rate_hz()
        self._lock = asyncio.Lock()  # Flask's `with lock:` around each synthesis

    def routes(self, app: web.Application) -> None:
        app.router.add_route("GET", "/api/tts", self.tts)
        app.router.add_route("POST", "/api/tts", self.tts)
        app.router.add_get("/voices", self.voices)
        app.router.add_get("/locales", self.locales)
        app.router.add_get("/", self.index)

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(text="<html><body>TTS demo server</body></html>",
                            content_type="text/html")

    async def locales(self, request: web.Request) -> web.Response:
        return web.Response(text=f"{self.model_name.split('/')[1]}\n", content_type="text/html")

    async def voices(self, request: web.Request) -> web.Response:
        locale = self.model_name.split("/")[1]
        names = self.speakers or (self.model_name.split("/")[3],)
        return web.Response(text="".join(f"{n} {locale} u\n" for n in names),
                            content_type="text/html")

    async def tts(self, request: web.Request) -> web.StreamResponse:
        form = await request.post() if request.method == "POST" else {}

        def value(header: str, name: str, default: str | None = None) -> str | None:
            got = request.headers.get(header) or request.query.get(name) or form.get(name)
            return got if isinstance(got, str) else default

        text = value("text", "text", "") or ""
        speaker = value("speaker-id", "speaker_id") if self.speakers else None
        language = value("language-id", "language_id", "en") if self.languages else None
        rec = self.record(request, {"text": text, "speaker_id": speaker,
                                    "language_id": language})
        fault = await self.injected_fault(request, "audio/wav")
        if fault is not None:
            return fault
        if not text.strip():
            return web.json_response({"error": "Text parameter is required"}, status=400)
        if self.speakers and speaker not in self.speakers:
            return web.json_response({"error": f"TTS synthesis failed: unknown speaker "
                                               f"{speaker!r}"}, status=500)
        if self.languages and language not in self.languages:
            return web.json_response({"error": f"TTS synthesis failed: unknown language "
                                               f"{language!r}"}, status=500)
        async with self._lock:
            pcm = b"".join([p async for p in self.speak(text, self.rate_hz)])
        body = wav_bytes(pcm, self.rate_hz)
        return await self.stream_audio(request, rec, content_type="audio/wav", head=body[:44],
                                       pcm=_once(body[44:]), rate_hz=self.rate_hz,
                                       content_length=len(body))


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=5002)
    parser.add_argument("--speakers", default="p225,p226",
                        help="comma list; empty = a single-speaker model")
    parser.add_argument("--languages", default="", help="comma list; empty = monolingual")
    parser.add_argument("--rtf", type=float, default=0.0, help="pace the body (x real time)")
    parser.add_argument("--cache", action="store_true",
                        help="replay the speech of a text asked before (benchmarks)")
    args = parser.parse_args()
    piper_speech.voice()
    serve_forever(CoquiTestServer(
        speakers=tuple(s for s in args.speakers.split(",") if s) or None,
        languages=tuple(s for s in args.languages.split(",") if s) or None,
        port=args.port, rtf=args.rtf, cache=args.cache))


if __name__ == "__main__":
    main()
