"""What the ElevenLabs faces share: request fields, model and voice mapping, key check, errors.

Errors take ElevenLabs' shapes: validation failures are 422 with FastAPI's list,
`{"detail": [{"type", "loc": ["body", "text"], "msg"}]}` (what the SDK's
`UnprocessableEntityError` carries), every other error `{"detail": {"status", "message"}}`.
Each names the offending field (`loc`, or `detail.field`).
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from adapters import registry
from adapters.errors import (
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    MorpheusError,
    TTSError,
)
from dsp.textfront import LexiconEntry
from server.app_keys import SETTINGS
from server.core.admission import Busy
from server.core.stream import StreamSpec
from server.errors import read_json_object
from server.faces.input import speakable
from server.security import key_ok, presented_key

# ElevenLabs' model ids: each means "the active backend" here (a backend name selects one).
ELEVENLABS_MODELS = ("eleven_multilingual_v2", "eleven_flash_v2_5", "eleven_turbo_v2_5",
                     "eleven_v3", "eleven_flash_v2", "eleven_turbo_v2", "eleven_monolingual_v1",
                     "eleven_multilingual_v1")


class VoiceSettings(BaseModel):
    """`voice_settings`: only `speed` changes Morpheus's output; the rest are accepted."""

    model_config = ConfigDict(extra="ignore")

    stability: float | None = Field(None, ge=0.0, le=1.0)
    similarity_boost: float | None = Field(None, ge=0.0, le=1.0)
    style: float | None = Field(None, ge=0.0, le=1.0)
    use_speaker_boost: StrictBool | None = None
    speed: float | None = Field(None, ge=0.25, le=4.0)


class Locator(BaseModel):
    """One of a request's `pronunciation_dictionary_locators` (server/faces/elevenlabs/
    dictionaries.py): a dictionary and its version (None: the latest)."""

    model_config = ConfigDict(extra="ignore")

    pronunciation_dictionary_id: StrictStr = Field(max_length=64)
    version_id: StrictStr | None = Field(None, max_length=64)


class SpeechBody(BaseModel):
    """The JSON body of the four text-to-speech routes."""

    model_config = ConfigDict(extra="ignore")

    text: StrictStr
    model_id: StrictStr | None = None
    language_code: StrictStr | None = None
    voice_settings: VoiceSettings | None = None
    seed: StrictInt | None = Field(None, ge=0, le=4294967295)
    previous_text: StrictStr | None = None
    next_text: StrictStr | None = None
    apply_text_normalization: Literal["auto", "on", "off"] | None = None
    pronunciation_dictionary_locators: list[Locator] | None = Field(None, max_length=3)

    @field_validator("text")
    @classmethod
    def _speakable(cls, v: str) -> str:
        speakable(v)  # raises when nothing is left to say; the input is kept as sent
        return v


class SpeechQuery(BaseModel):
    """The query string of the text-to-speech routes (and, with more, of the WebSockets)."""

    model_config = ConfigDict(extra="ignore")

    output_format: str | None = None
    optimize_streaming_latency: int | None = Field(None, ge=0, le=4)
    enable_logging: bool | None = None
    model_id: str | None = None
    language_code: str | None = None
    apply_text_normalization: Literal["auto", "on", "off"] | None = None


def backend_for(model_id: str | None) -> str | None:
    """A Morpheus backend name selects that backend; any other model id (eleven_*) means the
    active one, so ElevenLabs clients work whatever engine is configured."""
    return model_id if model_id in registry.BACKENDS else None


def stream_spec(*, voice_id: str, model_id: str | None, voice_settings: VoiceSettings | None,
                language: str | None, latency: int | None, transport: str,
                incremental: bool = False, normalization: str | None = None,
                lexicon: tuple[LexiconEntry, ...] = ()) -> StreamSpec:
    """`normalization`: apply_text_normalization; "auto" (or none) lets Morpheus decide
    (TEXT_NORMALIZATION, unless the engine normalizes better itself)."""
    speed = voice_settings.speed if voice_settings and voice_settings.speed else 1.0
    return StreamSpec(backend=backend_for(model_id), voice=voice_id, speed=speed,
                      language=language, low_latency=(latency or 0) >= 3,
                      transport=transport, incremental=incremental,
                      normalize={"on": True, "off": False}.get(normalization or "auto"),
                      lexicon=lexicon)


async def read_body(request: web.Request) -> SpeechBody:
    """The validated body; BadRequest (malformed JSON) or ValidationError otherwise."""
    return SpeechBody.model_validate(await read_json_object(request))


def key_error(request: web.Request) -> web.Response | None:
    """401 in ElevenLabs' shape when API_KEY is set and the request does not carry it."""
    presented = presented_key(request)
    if key_ok(request.app[SETTINGS].current, presented):
        return None
    status = "invalid_api_key" if presented else "needs_authorization"
    return detail_error(401, status, "a valid API key is required in the xi-api-key header",
                        field="xi-api-key")


# ------------------------------------------------------------------------------ errors


def detail_error(status: int, code: str, message: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None) -> web.Response:
    detail: dict[str, Any] = {"status": code, "message": message}
    if field:
        detail["field"] = field
    return web.json_response({"detail": detail}, status=status, headers=headers)


def validation_error(where: str, field: str | None, message: str,
                     type_: str = "value_error") -> web.Response:
    loc = [where, *field.split(".")] if field else [where]
    return web.json_response({"detail": [{"type": type_, "loc": loc, "msg": message}]},
                             status=422)


def from_validation(e: ValidationError, where: str) -> web.Response:
    first = e.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or None
    return validation_error(where, field, f"{field}: {first.get('msg')}" if field
                            else str(first.get("msg")), first.get("type", "value_error"))


def error_response(e: MorpheusError | Busy) -> web.Response:
    """A Morpheus error as ElevenLabs would answer it (the only place with these codes)."""
    if isinstance(e, Busy):
        retry = {"Retry-After": str(int(e.retry_after_s + 0.999))}
        if getattr(e, "draining", False):  # shutting down: another replica should answer
            return detail_error(503, "service_unavailable", "the server is shutting down",
                                headers=retry)
        return detail_error(429, "too_many_concurrent_requests", str(e), headers=retry)
    if isinstance(e, BadRequest) and e.status not in (400, 422):  # 413 too large, 415 type
        return detail_error(e.status, "invalid_request", str(e), field=e.field)
    if isinstance(e, BadRequest):
        where = "query" if e.field == "output_format" else "body"
        field = "model_id" if e.field == "backend" else ("text" if e.field == "input" else e.field)
        return validation_error(where, field, str(e))
    if isinstance(e, (BackendUnavailable, BackendTimeout)):
        return detail_error(503, "backend_unavailable", str(e), headers={"Retry-After": "5"})
    if isinstance(e, TTSError):
        return detail_error(502, "engine_error", str(e))
    return detail_error(500, "internal_error", str(e))  # no such error is raised on purpose


def ws_error(code: str, message: str, *, field: str | None = None,
             context_id: str | None = None) -> dict[str, Any]:
    """An error message on the ElevenLabs WebSockets (the SDK reads `message`, agent
    frameworks `error`)."""
    msg: dict[str, Any] = {"message": message, "error": code, "code": 1008}
    if field:
        msg["field"] = field
    if context_id is not None:
        msg["contextId"] = context_id
    return msg


__all__ = [
    "ELEVENLABS_MODELS",
    "SpeechBody",
    "SpeechQuery",
    "VoiceSettings",
    "backend_for",
    "detail_error",
    "error_response",
    "from_validation",
    "key_error",
    "read_body",
    "stream_spec",
    "validation_error",
    "ws_error",
]
