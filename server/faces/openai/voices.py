"""Voice routes of the native face: the voice list (Orpheus-FastAPI's shape) and the library.

    GET    /v1/audio/voices              {"status", "backend", "default", "voices": [ids],
                                          "voice_details": [...]}: the backend's voices, then
                                          the stored ones (`library: true`)
    POST   /v1/audio/voices              multipart (name, files, description, labels, language,
                                          backend): a clone; JSON (name, backend, voice, speed,
                                          ...): a preset. 201 with the voice
    GET    /v1/audio/voices/{voice_id}   a stored voice
    DELETE /v1/audio/voices/{voice_id}   delete it (streams speaking it finish)

Writes need the API key when one is set, and are refused from other machines without one.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from adapters.errors import MorpheusError
from server.app_keys import BACKENDS, SETTINGS, VOICES
from server.errors import from_morpheus, from_validation, json_error, read_json_object
from server.security import remote_write_refused
from server.voices.library import VoiceLibrary
from server.voices.presets import PresetBody
from server.voices.store import StoredVoice
from server.voices.uploads import read_multipart


def stored_json(library: VoiceLibrary, v: StoredVoice) -> dict[str, Any]:
    """A stored voice as the native routes show it."""
    body: dict[str, Any] = {
        "id": v.voice_id, "voice_id": v.voice_id, "name": v.name, "kind": v.kind,
        "backend": library.speaks_on(v), "language": v.language, "description": v.description,
        "labels": v.labels, "created_at": v.created_at, "library": True}
    if v.kind == "preset":
        body["preset"] = {"backend": v.backend, "voice": v.base_voice, "speed": v.speed,
                          "language": v.language, "temperature": v.temperature,
                          "top_p": v.top_p, "repetition_penalty": v.repetition_penalty}
    else:
        body["clips"] = [c.model_dump() for c in v.clips]
    return body


def _detail(library: VoiceLibrary, v: StoredVoice) -> dict[str, Any]:
    """A stored voice among `voice_details` (the engine voices' fields, and what it is)."""
    return {"id": v.voice_id, "name": v.name, "language": v.language or "",
            "gender": v.labels.get("gender"), "description": v.description,
            "backend": library.speaks_on(v) or "", "kind": v.kind, "library": True}


async def list_voices(request: web.Request) -> web.Response:
    """Orpheus-FastAPI's {"status","voices":[ids]} plus per-voice details in `voice_details`;
    the stored voices follow the backend's own."""
    settings = request.app[SETTINGS].current
    pool = request.app[BACKENDS]
    library = request.app[VOICES]
    name = request.query.get("backend") or settings.tts_backend
    try:
        pool.validate_name(name)
        adapter = pool.instance(name)
        if not adapter.voices():
            adapter = await pool.ready(name)
    except MorpheusError as e:
        return from_morpheus(e)
    listed = adapter.voices()
    stored = library.voices()
    if not listed and not stored:
        return web.json_response({"detail": "No voices available"}, status=404)
    return web.json_response({
        "status": "ok", "backend": name, "default": adapter.default_voice(),
        "voices": [v.id for v in listed] + [v.voice_id for v in stored],
        "voice_details": [v.__dict__ for v in listed] + [_detail(library, v) for v in stored],
    })


def _refused(request: web.Request) -> web.Response | None:
    if remote_write_refused(request.app[SETTINGS].current, request.remote):
        return json_error(403, "changing the voice library from another machine needs "
                          "API_KEY to be set", type_="forbidden")
    return None


async def add_voice(request: web.Request) -> web.Response:
    refused = _refused(request)
    if refused is not None:
        return refused
    library = request.app[VOICES]
    try:
        if request.content_type not in ("application/json",) and \
                not request.content_type.startswith("multipart/"):
            return json_error(415, "send multipart/form-data (name, files: a clone) or "
                              "application/json (name, backend, voice, speed: a preset), not "
                              f"{request.content_type!r}", field="Content-Type")
        if request.content_type.startswith("multipart/"):
            voice = await library.add_clone(
                lambda staging, hook, room: read_multipart(request, staging, library.limits,
                                                           max_files=room, on_field=hook))
        else:
            body = PresetBody.model_validate(await read_json_object(request))
            voice = await library.add_preset(body)
    except ValidationError as e:
        return from_validation(e)
    except MorpheusError as e:
        return from_morpheus(e)
    return web.json_response(stored_json(library, voice), status=201)


async def get_voice(request: web.Request) -> web.Response:
    library = request.app[VOICES]
    voice = library.get(request.match_info["voice_id"])
    if voice is None:
        return json_error(404, f"no stored voice {request.match_info['voice_id']!r}",
                          field="voice_id")
    return web.json_response(stored_json(library, voice))


async def delete_voice(request: web.Request) -> web.Response:
    refused = _refused(request)
    if refused is not None:
        return refused
    try:
        voice = await request.app[VOICES].delete(request.match_info["voice_id"])
    except MorpheusError as e:
        return from_morpheus(e)
    return web.json_response({"status": "deleted", "voice_id": voice.voice_id})


def add_voice_routes(app: web.Application) -> None:
    app.router.add_get("/v1/audio/voices", list_voices)
    app.router.add_post("/v1/audio/voices", add_voice)
    app.router.add_get("/v1/audio/voices/{voice_id}", get_voice)
    app.router.add_delete("/v1/audio/voices/{voice_id}", delete_voice)


__all__ = ["add_voice_routes", "stored_json"]
