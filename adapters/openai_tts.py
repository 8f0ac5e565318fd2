"""Any OpenAI-compatible speech upstream: OpenAI, Kokoro-FastAPI, speaches, openedai-speech,
another Morpheus.

Protocol: OpenAI `POST /v1/audio/speech` as the openai-python 1.x SDK sends it (JSON `model`,
`input`, `voice`, `response_format`, `speed`; `Authorization: Bearer`; the answer is the audio
bytes, chunked as they are made; reference/protocols.md §5). We ask for `pcm` (header-less
24 kHz s16le mono) and pass it on as it arrives. An upstream that answers another audio type,
or rejects `pcm` (4xx) and then answers `mp3`, is decoded as the bytes arrive (dsp/decoders).
Voices come from the upstream's list where it has one (`GET {base}/audio/voices`: Kokoro-FastAPI
answers `{"voices": [ids]}`, Morpheus adds `voice_details`), else from OPENAI_TTS_VOICE.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from adapters.base import AudioChunk, Capabilities, TTSInput, Voice
from adapters.errors import (
    BackendTimeout,
    BackendUnavailable,
    BadCredentials,
    MalformedAudio,
    TTSError,
    UpstreamRejected,
)
from adapters.upstream.http import LIST_TIMEOUT_S, HttpUpstreamAdapter
from adapters.upstream.pool import Upstream
from adapters.upstream.pooled import UpstreamConfig
from dsp.decoders import PCM_RATE_HZ, StreamDecoder, format_of, make_decoder, rate_param

log = logging.getLogger("morpheus.adapters.openai_tts")

NAME = "openai_tts"
FORMATS = ("pcm", "wav", "mp3", "opus", "flac", "aac")
FALLBACK_FORMAT = "mp3"  # OpenAI's default: every compatible server speaks it


@dataclass(frozen=True)
class OpenAITTSConfig:
    """The OPENAI_TTS_* settings (their defaults are stated in server/config.py)."""

    upstream: UpstreamConfig
    api_key: str | None
    model: str
    voices: tuple[str, ...]  # OPENAI_TTS_VOICE: the first is the default
    response_format: str


class OpenAITTSAdapter(HttpUpstreamAdapter):
    """Whole segments to `/audio/speech`; audio streams back as the upstream makes it."""

    name = NAME
    url_setting = "OPENAI_TTS_BASE_URL"
    probe_path = "/models"
    capabilities = Capabilities(native_rate_hz=PCM_RATE_HZ, streams_sub_sentence=True,
                                chunk_unit="segment", languages=("en",), native_speed=True)

    def __init__(self, config: OpenAITTSConfig) -> None:
        self.config = config
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else None
        super().__init__(self.config.upstream, headers=headers)
        self._listed: list[Voice] | None = None  # the upstream's own list, once asked
        self._formats: dict[str, str] = {}  # upstream -> the format it streams (pcm refused)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> OpenAITTSAdapter:
        return cls(OpenAITTSConfig(
            upstream=UpstreamConfig.from_options(options, "openai_tts_base_url"),
            api_key=options["openai_tts_api_key"] or None,
            model=str(options["openai_tts_model"]),
            voices=tuple(v.strip() for v in str(options["openai_tts_voice"]).split(",")
                         if v.strip()),
            response_format=str(options["openai_tts_response_format"]),
        ))

    # -- lifecycle

    async def warmup(self) -> None:
        self.pooled.require()
        if self._listed is None:
            self._listed = await self.pooled.first_answer(self._ask_voices)

    async def _ask_voices(self, address: str) -> list[Voice]:
        """The upstream's voices; [] when it has no list (OpenAI itself); typed errors when
        it cannot be reached (so warmup says the backend is down)."""
        try:
            body = await self.get_json(f"{address}/audio/voices", timeout_s=LIST_TIMEOUT_S)
        except (BackendUnavailable, BackendTimeout, BadCredentials):
            raise
        except TTSError:
            return []  # 404, an error status, not JSON: no usable list, but the upstream is up
        return parse_voice_list(body, self.name)

    def voices(self) -> list[Voice]:
        if self._listed:
            return list(self._listed)
        return [Voice(id=v, name=v, backend=self.name, description="from OPENAI_TTS_VOICE")
                for v in self.config.voices]

    def default_voice(self) -> str | None:
        ids = [v.id for v in self.voices()]
        preferred = self.config.voices[0] if self.config.voices else None
        if preferred is None:
            return ids[0] if ids else None
        return preferred if preferred in ids or not ids else ids[0]

    # -- streaming

    async def speak(self, up: Upstream, req: TTSInput) -> AsyncIterator[AudioChunk]:
        fmt = self._formats.get(up.address, self.config.response_format)
        url = f"{up.address}/audio/speech"
        body = {"model": self.config.model, "input": req.text,
                "voice": req.voice or self.default_voice(), "response_format": fmt,
                "speed": req.speed}
        try:
            async with self.request("POST", url, json=body) as resp:
                decoder = self._decoder(fmt, resp.headers.get("content-type"), url)
                async for chunk in self.audio_chunks(resp, decoder, url):
                    yield chunk
            return
        except UpstreamRejected as e:
            if fmt != "pcm" or isinstance(e, BadCredentials):
                raise
            rejected = e
        log.info("%s rejected pcm (%s); asking for %s", up.address, rejected, FALLBACK_FORMAT)
        body["response_format"] = FALLBACK_FORMAT
        async with self.request("POST", url, json=body) as resp:
            decoder = self._decoder(FALLBACK_FORMAT, resp.headers.get("content-type"), url)
            self._formats[up.address] = FALLBACK_FORMAT
            async for chunk in self.audio_chunks(resp, decoder, url):
                yield chunk

    def _decoder(self, asked: str, content_type: str | None, url: str) -> StreamDecoder:
        """The answer's own audio type wins; a generic or missing type means what we asked."""
        said = format_of(content_type)
        generic = content_type is None or "octet-stream" in content_type
        if said is None and not generic:
            raise MalformedAudio(f"{url} answered {content_type!r}, not audio", backend=self.name)
        fmt = asked if generic else said
        assert fmt is not None
        return make_decoder(fmt, rate_param(content_type) or PCM_RATE_HZ)


def parse_voice_list(body: Any, backend: str) -> list[Voice]:
    """`{"voices": ["a", ...]}` (Kokoro-FastAPI), Morpheus's `voice_details`, or a list of
    `{"id"|"voice_id", "name", ...}` objects -> Voices; anything else -> []."""
    if not isinstance(body, dict):
        return []
    items = body.get("voice_details") or body.get("voices") or []
    out: list[Voice] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str):
            out.append(Voice(id=item, name=item, backend=backend))
        elif isinstance(item, dict):
            vid = item.get("id") or item.get("voice_id") or item.get("name")
            if isinstance(vid, str) and vid:
                out.append(Voice(id=vid, name=str(item.get("name") or vid),
                                 language=str(item.get("language") or "en"),
                                 gender=item.get("gender") if isinstance(item.get("gender"), str)
                                 else None,
                                 description=str(item.get("description") or ""), backend=backend))
    return out
