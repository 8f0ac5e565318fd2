"""Coqui TTS `tts-server` (coqui-tts 0.28, the idiap fork; the 0.22-era server answers alike):
one `/api/tts` request per segment, the WAV passed on as its body arrives.

Protocol (reference/protocols.md §4): `GET /api/tts` reads each parameter from a request header
first, else from the query or form values, and never from a JSON body; we send `text`,
`speaker_id` and `language_id` as query parameters. `speaker_id` counts only for multi-speaker
models and `language_id` only for multilingual ones (the server drops them otherwise). The
answer is one WAV with true sizes at the model's own rate (22050 Hz for the LJSpeech models,
24000 Hz for XTTS), read from its header. The server synthesises the whole text before it
answers, so sub-sentence streaming comes from the orchestrator's segments, not from here.
Speakers: COQUI_SPEAKERS, else the MaryTTS-compatible `GET /voices` ("name locale gender"
lines); languages: COQUI_LANGUAGES (the capabilities), else the model's from `GET /locales`
(the voices' language). The rate declared is the LJSpeech default model's; each chunk carries
the rate its answer's header states.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from adapters.base import AudioChunk, Capabilities, TTSInput, Voice
from adapters.errors import BackendTimeout, BackendUnavailable, BadCredentials, TTSError
from adapters.upstream.http import LIST_TIMEOUT_S, HttpUpstreamAdapter
from adapters.upstream.pool import Upstream
from adapters.upstream.pooled import UpstreamConfig
from dsp.decoders import WavDecoder

log = logging.getLogger("morpheus.adapters.coqui")

NAME = "coqui"
DEFAULT_RATE_HZ = 22_050  # the LJSpeech default model's rate; each answer's header says its own


@dataclass(frozen=True)
class CoquiConfig:
    """The COQUI_* settings (their defaults are stated in server/config.py)."""

    upstream: UpstreamConfig
    speakers: tuple[str, ...]  # COQUI_SPEAKERS; empty = ask the server
    languages: tuple[str, ...]  # COQUI_LANGUAGES; empty = ask the server
    voice: str | None


class CoquiAdapter(HttpUpstreamAdapter):
    """Whole segments; each answer is streamed on as it arrives, at the model's rate."""

    name = NAME
    url_setting = "COQUI_URL"
    probe_path = "/locales"
    capabilities = Capabilities(native_rate_hz=DEFAULT_RATE_HZ, streams_sub_sentence=False,
                                chunk_unit="segment", languages=("en",), native_speed=False)

    def __init__(self, config: CoquiConfig) -> None:
        self.config = config
        super().__init__(config.upstream)
        self._speakers = list(config.speakers)
        self._languages = list(config.languages)  # only the setting restricts requests
        self._locale: str | None = None  # the model's language, as the server says
        if self._languages:
            self.capabilities = replace(self.capabilities, languages=tuple(self._languages))

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> CoquiAdapter:
        return cls(CoquiConfig(
            upstream=UpstreamConfig.from_options(options, "coqui_url"),
            speakers=_comma_list(options["coqui_speakers"]),
            languages=_comma_list(options["coqui_languages"]),
            voice=options["coqui_voice"] or None,
        ))

    # -- lifecycle and voices

    async def warmup(self) -> None:
        self.pooled.require()
        await self.pooled.first_answer(self._learn)

    async def _learn(self, address: str) -> None:
        """Speakers and languages from the server where the settings name none. A server too
        old for these routes still works (it answers 404): one default speaker then."""
        if not self.config.speakers:
            lines = await self._text_lines(f"{address}/voices")
            if lines is not None:
                self._speakers = [name for name, _, _ in (_mary_voice(x) for x in lines) if name]
        if not self.config.languages:
            lines = await self._text_lines(f"{address}/locales")
            # The locale is the model name's second part: a language code, or "multilingual"
            # (then the model's languages are not listed anywhere but its web page).
            codes = [x for x in lines or () if 2 <= len(x) <= 5]
            if codes:
                self._locale = codes[0]

    async def _text_lines(self, url: str) -> list[str] | None:
        try:
            async with self.request("GET", url, timeout=LIST_TIMEOUT_S) as resp:
                body = await resp.aread()
        except (BackendUnavailable, BackendTimeout, BadCredentials):
            raise  # the server is not there: warmup says so
        except TTSError:
            return None  # no such route on this server
        return [line.strip() for line in body.decode("utf-8", "replace").splitlines()
                if line.strip()]

    def voices(self) -> list[Voice]:
        language = self._languages[0] if self._languages else self._locale or "en"
        return [Voice(id=s, name=s, language=language, backend=self.name,
                      description="Coqui TTS speaker") for s in self._speakers]

    def default_voice(self) -> str | None:
        if self.config.voice and (self.config.voice in self._speakers or not self._speakers):
            return self.config.voice
        return self._speakers[0] if self._speakers else None

    # -- streaming

    async def speak(self, up: Upstream, req: TTSInput) -> AsyncIterator[AudioChunk]:
        params = {"text": req.text}
        speaker = req.voice or self.default_voice()
        if speaker and (speaker in self._speakers or not self._speakers):
            params["speaker_id"] = speaker
        # With COQUI_LANGUAGES set, a language outside it is left to the server's default
        # (its --language_idx): a multilingual model answers an unknown one with a 500.
        if req.language and (req.language in self._languages or not self._languages):
            params["language_id"] = req.language
        url = f"{up.address}/api/tts"
        async with self.request("GET", url, params=params) as resp:
            async for chunk in self.audio_chunks(resp, WavDecoder(), url):
                yield chunk


def _comma_list(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _mary_voice(line: str) -> tuple[str, str, str]:
    """MaryTTS `/voices` line "name locale gender" -> its parts (a name may hold spaces)."""
    parts = line.rsplit(" ", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else (line, "", "")


__all__ = ["CoquiAdapter", "CoquiConfig"]
