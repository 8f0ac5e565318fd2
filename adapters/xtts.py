"""Coqui XTTS servers: xtts-streaming-server (latents in the request) and xtts-api-server
(a speaker name in the query), detected per upstream or fixed by XTTS_API.

Protocols (reference/protocols.md §3):
- coqui-ai/xtts-streaming-server at 99286c1: `POST /tts_stream` with JSON `text`, `language`,
  `speaker_embedding` (512 floats), `gpt_cond_latent` (rows of 1024 floats), `add_wav_header`,
  `stream_chunk_size` (a string); latents from `GET /studio_speakers` or, once per reference
  clip, from `POST /clone_speaker` (multipart field `wav_file`).
- xtts-api-server 0.9.0: `GET /tts_stream?text=&speaker_wav=&language=`; `speaker_wav` is a
  speaker name from `GET /speakers_list`, or a path the server can read (our clips are sent by
  absolute path, so that server must see XTTS_SPEAKERS_DIR).
Both answer a 44-byte WAV header that claims zero frames (24 kHz, 16-bit, mono), then raw
PCM as XTTS makes it; the header is read (and checked) by dsp.wav.WavReader, never played.
Voices: the server's speakers plus one per clip in XTTS_SPEAKERS_DIR (file name = voice name).
A stored clone (TTSInput.reference_audio) goes the same way as such a clip: through
/clone_speaker once (latents cached), or by path to xtts-api-server.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from adapters.base import AudioChunk, Capabilities, TTSInput, Voice
from adapters.errors import BackendUnavailable, BadRequest, EngineError, UpstreamRejected
from adapters.upstream.http import HttpUpstreamAdapter
from adapters.upstream.pool import Upstream
from adapters.upstream.pooled import UpstreamConfig
from dsp.decoders import WavDecoder

log = logging.getLogger("morpheus.adapters.xtts")

NAME = "xtts"
XTTS_RATE_HZ = 24_000
STREAMING_SERVER, API_SERVER = "streaming-server", "api-server"
LANGUAGES = ("en", "es", "fr", "de", "it", "pt", "pl", "tr", "ru", "nl", "cs", "ar", "zh-cn",
             "ja", "hu", "ko", "hi")
CLIP_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg")
CLONE_TIMEOUT_S = 60.0  # computing latents from a clip runs the model once


@dataclass(frozen=True)
class XttsConfig:
    """The XTTS_* settings (their defaults are stated in server/config.py)."""

    upstream: UpstreamConfig
    api: str  # auto | streaming-server | api-server
    speakers_dir: str | None
    voice: str | None
    language: str
    stream_chunk_size: int  # XTTS tokens per streamed chunk


class XttsAdapter(HttpUpstreamAdapter):
    """Streams XTTS's own chunks as they come (sub-sentence); speed is the pipeline's."""

    name = NAME
    url_setting = "XTTS_URL"
    probe_path = "/languages"  # both servers have it; cheap
    capabilities = Capabilities(native_rate_hz=XTTS_RATE_HZ, streams_sub_sentence=True,
                                chunk_unit="segment", languages=LANGUAGES, native_speed=False,
                                clones=True)

    def __init__(self, config: XttsConfig) -> None:
        self.config = config
        super().__init__(self.config.upstream)
        self._apis: dict[str, str] = {}  # upstream -> the protocol it speaks
        self._studio: dict[str, bytes] = {}  # studio speaker -> its latents as JSON members
        self._named: list[str] = []  # xtts-api-server's speaker names
        self._clones: dict[tuple[str, int, int], bytes] = {}  # (clip, mtime, size) -> latents
        self._clone_lock = asyncio.Lock()
        self._clips_seen: tuple[float, dict[str, Path]] = (-1.0, {})

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> XttsAdapter:
        return cls(XttsConfig(
            upstream=UpstreamConfig.from_options(options, "xtts_url"),
            api=str(options["xtts_api"]),
            speakers_dir=options["xtts_speakers_dir"] or None,
            voice=options["xtts_voice"] or None,
            language=str(options["xtts_language"]),
            stream_chunk_size=int(options["xtts_stream_chunk_size"]),
        ))

    # -- lifecycle and voices

    async def warmup(self) -> None:
        self.pooled.require()
        await self.pooled.first_answer(self._learn)
        voice = self.default_voice()
        clip = self._clips().get(voice or "")
        if clip is not None and STREAMING_SERVER in self._apis.values():
            # the first request waits less
            await self.pooled.first_answer(lambda a: self._clone(a, clip))

    async def _learn(self, address: str) -> None:
        """Which protocol `address` speaks, and its speakers."""
        api = await self._api(address)
        if api == STREAMING_SERVER:
            studio = await self.get_json(f"{address}/studio_speakers")
            if isinstance(studio, dict):
                self._studio = {name: _latents_members(value, address, self.name)
                                for name, value in studio.items() if isinstance(value, dict)}
        else:
            names = await self.get_json(f"{address}/speakers_list")
            self._named = [n for n in names if isinstance(n, str)] if isinstance(names, list) else []

    async def _api(self, address: str) -> str:
        if self.config.api != "auto":
            return self.config.api
        api = self._apis.get(address)
        if api is None:
            api = self._apis[address] = await self._detect(address)
            log.info("%s speaks the %s protocol", address, api)
        return api

    async def _detect(self, address: str) -> str:
        """Both are FastAPI apps: their OpenAPI schema names their routes. Without one, the
        route only each has tells."""
        try:
            paths = (await self.get_json(f"{address}/openapi.json")).get("paths", {})
        except (UpstreamRejected, EngineError, AttributeError):
            paths = {}
        if "/clone_speaker" in paths or "/studio_speakers" in paths:
            return STREAMING_SERVER
        if "/speakers_list" in paths or "/tts_to_audio/" in paths:
            return API_SERVER
        for path, api in (("/studio_speakers", STREAMING_SERVER), ("/speakers_list", API_SERVER)):
            try:
                await self.get_json(address + path)
                return api
            except UpstreamRejected:
                continue
        raise BackendUnavailable(f"{address} speaks neither XTTS server protocol (no "
                                 "/studio_speakers or /speakers_list); set XTTS_API",
                                 backend=self.name)

    def _clips(self) -> dict[str, Path]:
        """Reference clips in XTTS_SPEAKERS_DIR, rescanned when the folder changes."""
        folder = Path(self.config.speakers_dir) if self.config.speakers_dir else None
        if folder is None or not folder.is_dir():
            return {}
        mtime = folder.stat().st_mtime
        if mtime != self._clips_seen[0]:
            clips = {p.stem: p.resolve() for p in sorted(folder.iterdir())
                     if p.suffix.lower() in CLIP_SUFFIXES and p.is_file()}
            self._clips_seen = (mtime, clips)
        return self._clips_seen[1]

    def voices(self) -> list[Voice]:
        clips = self._clips()
        out = [Voice(id=name, name=name, backend=self.name,
                     description=f"cloned from {path.name}") for name, path in clips.items()]
        for name in [*self._studio, *self._named]:
            if name not in clips:
                out.append(Voice(id=name, name=name, backend=self.name,
                                 description="XTTS server speaker"))
        return out

    def default_voice(self) -> str | None:
        ids = [v.id for v in self.voices()]
        if self.config.voice and self.config.voice in ids:
            return self.config.voice
        return ids[0] if ids else self.config.voice

    # -- streaming

    def prepare(self, req: TTSInput) -> TTSInput:
        """The voice and language every upstream is asked for; no voice at all is an error."""
        voice = req.voice or self.default_voice()
        if not voice:
            raise BackendUnavailable("no XTTS voice: the server lists no speakers and "
                                     "XTTS_SPEAKERS_DIR holds no clip", backend=self.name)
        return replace(req, voice=voice, language=(req.language or self.config.language).lower())

    async def speak(self, up: Upstream, req: TTSInput) -> AsyncIterator[AudioChunk]:
        text, voice, language = req.text, req.voice or "", req.language or ""
        clip = Path(req.reference_audio) if req.reference_audio else None  # a stored clone
        address = up.address
        url = f"{address}/tts_stream"
        if await self._api(address) == STREAMING_SERVER:
            latents = await (self._clone(address, clip) if clip is not None
                             else self._latents(address, voice))
            body = b"".join((
                b'{"text": ', json.dumps(text).encode(), b', "language": ',
                json.dumps(language).encode(), b', "add_wav_header": true, "stream_chunk_size": ',
                json.dumps(str(self.config.stream_chunk_size)).encode(), b", ", latents, b"}"))
            request = self.request("POST", url, content=body,
                                   headers={"Content-Type": "application/json"})
        else:
            clip = clip or self._clips().get(voice)
            speaker = str(clip) if clip is not None else voice
            request = self.request("GET", url, params={"text": text, "speaker_wav": speaker,
                                                       "language": language})
        async with request as resp:
            async for chunk in self.audio_chunks(resp, WavDecoder(), url):
                yield chunk

    async def _latents(self, address: str, voice: str) -> bytes:
        clip = self._clips().get(voice)
        if clip is not None:
            return await self._clone(address, clip)
        latents = self._studio.get(voice)
        if latents is None:
            if not self._studio:
                await self._learn(address)  # warmed up on an upstream that was down then
                latents = self._studio.get(voice)
            if latents is None:
                raise BadRequest(f"unknown XTTS voice {voice!r}", field="voice")
        return latents

    async def _clone(self, address: str, clip: Path) -> bytes:
        """The clip's latents, computed once by the server (cached by path, mtime and size)."""
        stat = await asyncio.to_thread(clip.stat)
        key = (str(clip), stat.st_mtime_ns, stat.st_size)
        async with self._clone_lock:  # one clone per clip, however many streams ask at once
            cached = self._clones.get(key)
            if cached is not None:
                return cached
            data = await asyncio.to_thread(clip.read_bytes)
            url = f"{address}/clone_speaker"
            async with self.request("POST", url, files={"wav_file": (clip.name, data)},
                                    timeout=CLONE_TIMEOUT_S) as resp:
                body = await resp.aread()
            try:
                latents = _latents_members(json.loads(body), address, self.name)
            except ValueError as e:
                raise EngineError(f"{url} answered no latents: {body[:120]!r}",
                                  backend=self.name) from e
            log.info("cloned voice %s from %s", clip.stem, clip)
            self._clones[key] = latents
            return latents


def _latents_members(value: Any, address: str, backend: str) -> bytes:
    """`{"speaker_embedding": [...], "gpt_cond_latent": [[...]]}` -> those two JSON members,
    serialised once: they are most of every request body (65 x 1024 floats)."""
    try:
        embedding = [float(x) for x in value["speaker_embedding"]]
        latent = [[float(x) for x in row] for row in value["gpt_cond_latent"]]
    except (KeyError, TypeError, ValueError) as e:
        raise EngineError(f"{address} sent speaker latents of the wrong shape: {e}",
                          backend=backend) from e
    if not embedding or not latent:
        raise EngineError(f"{address} sent empty speaker latents", backend=backend)
    return (b'"speaker_embedding": ' + json.dumps(embedding).encode()
            + b', "gpt_cond_latent": ' + json.dumps(latent).encode())


__all__ = ["XttsAdapter", "XttsConfig"]
