"""ElevenLabs' listings: `GET /v1/voices`, `GET /v2/voices` and `GET /v1/models`.

Voices are the active backend's (their ids are Morpheus voice ids), then the stored voices of
the voice library (server/faces/elevenlabs/voices.py: category `cloned` or `generated`). Models are one per enabled
Morpheus backend (`model_id` = the backend name selects it) plus ElevenLabs' own model ids,
each of which means the active backend. `/v1/models` is also OpenAI's route: ElevenLabs
clients are told apart by the `xi-api-key` header or the SDK's `X-Fern-SDK-Name` header and get
ElevenLabs' bare array; everyone else gets OpenAI's list.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from adapters import registry
from adapters.base import TTSAdapter, Voice
from adapters.errors import MorpheusError
from server.app_keys import BACKENDS, SETTINGS, VOICES
from server.faces.elevenlabs.api import ELEVENLABS_MODELS, detail_error, error_response, key_error
from server.voices.library import VoiceLibrary
from server.voices.store import StoredVoice

V2_PAGE_SIZE = 10  # ElevenLabs' default page
LANGUAGE_NAMES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish",
                  "it": "Italian", "pt": "Portuguese", "nl": "Dutch", "pl": "Polish",
                  "ja": "Japanese", "zh": "Chinese", "ko": "Korean", "hi": "Hindi"}


def is_elevenlabs_client(request: web.Request) -> bool:
    """Whether a request comes from an ElevenLabs client (SDK or any script with its key)."""
    sdk = request.headers.get("X-Fern-SDK-Name", "")
    return "xi-api-key" in request.headers or "elevenlabs" in sdk.lower()


async def _active_adapter(request: web.Request) -> TTSAdapter:
    pool = request.app[BACKENDS]
    name = request.app[SETTINGS].current.tts_backend
    adapter = pool.instance(name)
    if not adapter.voices():  # voices may need the backend loaded (or its upstream asked)
        adapter = await pool.ready(name)
    return adapter


CATEGORY = {"clone": "cloned", "preset": "generated"}


def stored_voice_json(library: VoiceLibrary, v: StoredVoice) -> dict[str, Any]:
    """A stored voice in ElevenLabs' `Voice` shape (what the SDK parses)."""
    backend = library.speaks_on(v) or ""
    labels = {**v.labels, "backend": backend}
    if v.language:
        labels.setdefault("language", v.language)
    samples = [{"sample_id": c.file.removesuffix(".wav"), "file_name": c.source_name,
                "mime_type": "audio/wav", "size_bytes": c.size_bytes, "hash": c.sha256}
               for c in v.clips]
    return {"voice_id": v.voice_id, "name": v.name, "category": CATEGORY[v.kind],
            "labels": labels, "description": v.description or None, "preview_url": None,
            "samples": samples or None,
            "settings": {"speed": v.speed} if v.speed is not None else None,
            "available_for_tiers": [], "high_quality_base_model_ids": [],
            "verified_languages": [{"language": v.language or "en", "model_id": backend}],
            "created_at_unix": int(v.created_at), "is_legacy": False}


def voice_json(v: Voice) -> dict[str, Any]:
    labels = {"language": v.language, "backend": v.backend}
    if v.gender:
        labels["gender"] = v.gender
    return {"voice_id": v.id, "name": v.name, "category": "premade", "labels": labels,
            "description": v.description or None, "preview_url": None, "settings": None,
            "available_for_tiers": [], "high_quality_base_model_ids": [],
            "verified_languages": [{"language": v.language, "model_id": v.backend}],
            "is_legacy": False}


async def engine_voices(request: web.Request) -> list[Voice]:
    """The active backend's voices (MorpheusError when it cannot be loaded)."""
    return (await _active_adapter(request)).voices()


async def _voices(request: web.Request) -> list[dict[str, Any]] | web.Response:
    """Every voice as ElevenLabs shows one: the active backend's, then the stored ones."""

    denied = key_error(request)
    if denied is not None:
        return denied
    try:
        listed = [voice_json(v) for v in await engine_voices(request)]
    except MorpheusError as e:
        return error_response(e)
    library = request.app[VOICES]
    return listed + [stored_voice_json(library, v) for v in library.voices()]


async def list_voices(request: web.Request) -> web.Response:
    """GET /v1/voices: `{"voices": [...]}`."""
    voices = await _voices(request)
    if isinstance(voices, web.Response):
        return voices
    return web.json_response({"voices": voices})


async def list_voices_v2(request: web.Request) -> web.Response:
    """GET /v2/voices: searched (`search`) and paged (`page_size`, `next_page_token`)."""
    voices = await _voices(request)
    if isinstance(voices, web.Response):
        return voices
    q = request.query
    try:
        size = int(q.get("page_size", V2_PAGE_SIZE))
        start = int(q.get("next_page_token") or 0)
    except ValueError:
        return detail_error(422, "invalid_parameters",
                            "page_size and next_page_token must be integers", field="page_size")
    if not 1 <= size <= 100 or start < 0:
        return detail_error(422, "invalid_parameters", "page_size must be 1..100",
                            field="page_size")
    search = q.get("search", "").lower()
    if search:
        voices = [v for v in voices if search in " ".join(
            str(v.get(k) or "") for k in ("voice_id", "name", "description")).lower()]
    page = voices[start:start + size]
    more = start + size < len(voices)
    return web.json_response({"voices": page, "has_more": more,
                              "total_count": len(voices),
                              "next_page_token": str(start + size) if more else None})


def _model(model_id: str, name: str, description: str, languages: tuple[str, ...],
           max_chars: int) -> dict[str, Any]:
    return {
        "model_id": model_id, "name": name, "description": description,
        "can_be_finetuned": False, "can_do_text_to_speech": True,
        "can_do_voice_conversion": False, "can_use_style": False,
        "can_use_speaker_boost": False, "serves_pro_voices": False, "token_cost_factor": 0.0,
        "requires_alpha_access": False, "max_characters_request_free_user": max_chars,
        "max_characters_request_subscribed_user": max_chars,
        "maximum_text_length_per_request": max_chars,
        "languages": [{"language_id": c, "name": LANGUAGE_NAMES.get(c, c)} for c in languages],
    }


async def list_models(request: web.Request) -> web.Response:
    """GET /v1/models for ElevenLabs clients: a bare JSON array of models."""
    denied = key_error(request)
    if denied is not None:
        return denied
    settings = request.app[SETTINGS].current
    pool = request.app[BACKENDS]
    limit = settings.max_input_chars
    models = []
    for name in settings.enabled_backends:
        try:
            languages = pool.instance(name).languages()
        except MorpheusError:  # not installed here: listed by /adapters with the reason
            continue
        entry = registry.BACKENDS.get(name)
        models.append(_model(name, name, entry.description if entry else name, languages,
                             limit))
    active = settings.tts_backend
    try:
        languages = pool.instance(active).languages()
    except MorpheusError:
        languages = ("en",)
    models += [_model(m, m, f"served by Morpheus's active backend ({active})", languages, limit)
               for m in ELEVENLABS_MODELS]
    return web.json_response(models)


__all__ = ["engine_voices", "is_elevenlabs_client", "list_models", "list_voices",
           "list_voices_v2", "voice_json"]
