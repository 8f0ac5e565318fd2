"""The ElevenLabs API, or any server that speaks it (a second Morpheus does), as a backend.

Protocol: ElevenLabs text-to-speech v1 as the `elevenlabs` SDK 2.78 sends it
(reference/protocols.md section 1). Whole segments go to
`POST /v1/text-to-speech/{voice}/stream?output_format=pcm_24000` and are decoded as the bytes
arrive; a stream whose text arrives in pieces (WebSocket, WebRTC) keeps one
`multi-stream-input` WebSocket for its whole life (adapters/elevenlabs_session.py), which also
brings exact word timings from the upstream's alignment. Voices come from `GET /v1/voices`.

Settings: ELEVENLABS_BASE_URL (default the public API; a comma list is a pool of upstreams),
ELEVENLABS_API_KEY (sent as `xi-api-key`, never logged), ELEVENLABS_MODEL_ID,
ELEVENLABS_VOICE_ID (default: the first voice the upstream lists); their defaults are stated
in server/config.py. Until a key is set or the URL points elsewhere, the backend is "not
configured" and never touches the network.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

import aiohttp

from adapters.base import (
    PIPELINE_RATE_HZ,
    AdapterSession,
    AudioChunk,
    Capabilities,
    TTSInput,
    Voice,
)
from adapters.elevenlabs.tail import TailHold
from adapters.errors import MalformedAudio
from adapters.upstream.http import HttpUpstreamAdapter
from adapters.upstream.pool import Upstream
from adapters.upstream.pooled import UpstreamConfig

log = logging.getLogger("morpheus.adapters.elevenlabs")

PUBLIC_API = "https://api.elevenlabs.io"  # needs a key: without one it is never contacted
OUTPUT_FORMAT = "pcm_24000"  # s16le mono at the pipeline's rate: no decoding, no resampling
# What raw PCM may be labelled (ElevenLabs says audio/pcm); anything else is not what we asked.
PCM_TYPES = ("", "audio/pcm", "audio/l16", "audio/x-pcm", "audio/raw", "application/octet-stream")


class ElevenLabsAdapter(HttpUpstreamAdapter):
    """ElevenLabs text-to-speech over HTTP (segments) and WebSocket (incremental streams)."""

    name = "elevenlabs"
    capabilities = Capabilities(
        native_rate_hz=PIPELINE_RATE_HZ, streams_sub_sentence=True, chunk_unit="segment",
        languages=("en", "de", "fr", "es", "it", "pt", "pl", "nl", "ja", "zh", "ko", "hi"),
        # ElevenLabs' own speed only spans 0.7-1.2: the pipeline stretches instead.
        native_speed=False, word_timings=True,
    )
    url_setting = "ELEVENLABS_BASE_URL"
    probe_path = "/v1/voices"

    def __init__(self, upstream: UpstreamConfig, *, api_key: str | None, model_id: str,
                 voice_id: str | None) -> None:
        if upstream.addresses in ((), (PUBLIC_API,)) and not api_key:
            upstream = replace(upstream, addresses=())  # not configured: never contacted
        elif not upstream.addresses:
            upstream = replace(upstream, addresses=(PUBLIC_API,))
        self.api_key = api_key
        self.model_id = model_id
        self.voice_id = voice_id
        super().__init__(upstream, headers=self.headers())
        self._ws_session: aiohttp.ClientSession | None = None
        self._voices: list[Voice] = []

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ElevenLabsAdapter:
        return cls(UpstreamConfig.from_options(options, "elevenlabs_base_url"),
                   api_key=options["elevenlabs_api_key"] or None,
                   model_id=str(options["elevenlabs_model_id"]),
                   voice_id=options["elevenlabs_voice_id"] or None)

    def missing_setting(self) -> str:
        return ("elevenlabs is not configured: set ELEVENLABS_API_KEY for the public API, "
                "or ELEVENLABS_BASE_URL for a server that speaks it")

    # --- plumbing shared with the session ---------------------------------------------------

    def headers(self) -> dict[str, str]:
        return {"xi-api-key": self.api_key} if self.api_key else {}

    def ws_session(self) -> aiohttp.ClientSession:
        if self._ws_session is None:
            self._ws_session = aiohttp.ClientSession(headers=self.headers())
        return self._ws_session

    # --- lifecycle, voices ------------------------------------------------------------------

    async def warmup(self) -> None:
        self.pooled.require()
        if not self._voices:
            self._voices = await self.pooled.first_answer(self._list_voices)

    async def _list_voices(self, address: str) -> list[Voice]:
        url = f"{address}/v1/voices"
        answer = await self.get_json(url)
        try:
            return [_voice(v, self.name) for v in answer["voices"]]
        except (KeyError, TypeError) as e:
            raise MalformedAudio(f"{url} did not answer a voice list: {e!r}",
                                 backend=self.name) from e

    def voices(self) -> list[Voice]:
        return list(self._voices)

    def default_voice(self) -> str | None:
        return self.voice_id or super().default_voice()

    def open_session(self) -> AdapterSession:
        from adapters.elevenlabs.session import ElevenLabsSession

        return ElevenLabsSession(self)

    async def aclose(self) -> None:
        if self._ws_session is not None:
            await self._ws_session.close()
        await super().aclose()

    # --- whole segments over HTTP ------------------------------------------------------------

    def body(self, req: TTSInput) -> dict[str, Any]:
        body: dict[str, Any] = {"text": req.text, "model_id": self.model_id}
        if req.language:
            body["language_code"] = req.language
        return body

    async def speak(self, up: Upstream, req: TTSInput) -> AsyncIterator[AudioChunk]:
        voice = req.voice or self.default_voice() or "default"
        url = f"{up.address}/v1/text-to-speech/{voice}/stream"
        params = {"output_format": OUTPUT_FORMAT}
        if req.low_latency:
            params["optimize_streaming_latency"] = "3"
        tail = TailHold()
        async with self.request("POST", url, params=params, json=self.body(req)) as resp:
            kind = resp.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind not in PCM_TYPES:
                raise MalformedAudio(f"{url} answered {kind!r}, not the raw {OUTPUT_FORMAT} "
                                     "audio asked for", backend=self.name)
            async for data in resp.aiter_bytes():
                pcm = tail.push(data)
                if pcm:
                    yield AudioChunk(pcm, PIPELINE_RATE_HZ)
        last = tail.finish()
        if not last:
            raise MalformedAudio(f"{url} answered no audio for {len(req.text)} characters",
                                 backend=self.name)
        yield AudioChunk(last, PIPELINE_RATE_HZ, is_final=True)


def _voice(v: Mapping[str, Any], backend: str) -> Voice:
    labels = v.get("labels") or {}
    return Voice(id=str(v["voice_id"]), name=str(v.get("name") or v["voice_id"]),
                 language=str(labels.get("language") or "en"), gender=labels.get("gender"),
                 description=str(v.get("description") or ""), backend=backend)


__all__ = ["ElevenLabsAdapter"]
