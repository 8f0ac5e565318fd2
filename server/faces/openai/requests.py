"""Request bodies for the HTTP API, validated into typed objects; errors name the field."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator

from dsp.encoders import FORMATS
from dsp.textfront import LexiconEntry
from server.faces.input import speakable

ResponseFormat = Literal["wav", "pcm", "mp3", "opus", "flac", "aac"]
assert set(FORMATS) == {"wav", "pcm", "mp3", "opus", "flac", "aac"}


class Pronunciation(BaseModel):
    """One entry of a request's `lexicon`: say `alias` for `text`, or `ipa` on engines that
    take phonemes (its alias, or the text itself, on the others)."""

    model_config = ConfigDict(extra="forbid")

    text: StrictStr = Field(min_length=1, max_length=200)
    alias: StrictStr | None = Field(None, max_length=500)
    ipa: StrictStr | None = Field(None, max_length=500)

    def entry(self) -> LexiconEntry:
        return LexiconEntry(self.text, alias=self.alias, ipa=(self.ipa or "").strip("/") or None)


class SpeechRequest(BaseModel):
    """POST /v1/audio/speech: OpenAI's fields plus Morpheus's streaming and engine knobs."""

    model_config = ConfigDict(extra="ignore")

    input: StrictStr
    model: StrictStr = "tts-1"
    voice: StrictStr | None = None
    response_format: ResponseFormat = "wav"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    stream: StrictBool = True
    stream_format: Literal["audio", "sse"] = "audio"
    low_latency: StrictBool = False
    backend: StrictStr | None = None
    language: StrictStr | None = None
    instructions: StrictStr | None = None  # accepted for OpenAI compatibility; not used
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    repetition_penalty: float | None = Field(None, ge=1.0, le=2.0)
    normalize: StrictBool | None = None  # numbers, dates, URLs as words; None: TEXT_NORMALIZATION
    lexicon: list[Pronunciation] = Field(default_factory=list, max_length=100)

    @field_validator("input")
    @classmethod
    def _speakable(cls, v: str) -> str:
        return speakable(v)


class LegacySpeakRequest(BaseModel):
    """POST /speak as Orpheus-FastAPI read it."""

    model_config = ConfigDict(extra="ignore")

    text: StrictStr | None = None
    voice: StrictStr = "tara"
