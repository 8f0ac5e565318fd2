"""ElevenLabs' voice routes over the voice library (server/voices), as the official SDK calls
them (`client.voices.ivc.create`, `voices.get`, `voices.update`, `voices.delete`):

    POST   /v1/voices/add                 multipart name, files, description, labels (JSON);
                                          answers {"voice_id", "requires_verification"}
    GET    /v1/voices/{voice_id}          a stored voice, or one of the active backend's
    POST   /v1/voices/{voice_id}/edit     multipart name, description, labels; files are added
    DELETE /v1/voices/{voice_id}          {"status": "ok"}; streams speaking it finish

`remove_background_noise` is accepted and ignored (no noise removal here). Writes need the API
key when one is set, and are refused from other machines without one, as POST /config is. A
name already taken is a 400 here (409 on the native routes): see `_error`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from adapters.errors import MorpheusError
from server.app_keys import SETTINGS, VOICES
from server.faces.elevenlabs.api import detail_error, error_response, key_error
from server.faces.elevenlabs.catalog import engine_voices, stored_voice_json, voice_json
from server.security import remote_write_refused
from server.voices.errors import VoiceConflict, VoiceNotFound
from server.voices.library import VoiceLibrary
from server.voices.uploads import read_multipart


def _error(e: MorpheusError) -> web.Response:
    if isinstance(e, VoiceNotFound):
        return detail_error(404, "voice_not_found", f"a voice with the voice_id "
                            f"{e.voice_id!r} was not found", field="voice_id")
    if isinstance(e, VoiceConflict):
        # 400, not the native face's 409: the official SDK retries a 409 (twice, seconds
        # apart) and its retry drops the form fields, so its caller would see a confusing
        # "needs a name" instead of this.
        return detail_error(400, "voice_already_exists", str(e), field=e.field)
    return error_response(e)


def _write_check(request: web.Request) -> web.Response | None:
    denied = key_error(request)
    if denied is not None:
        return denied
    if remote_write_refused(request.app[SETTINGS].current, request.remote):
        return detail_error(403, "forbidden", "changing the voice library from another "
                            "machine needs API_KEY to be set")
    return None


def _reader(request: web.Request, library: VoiceLibrary) -> Any:
    return lambda staging, hook, room: read_multipart(request, staging, library.limits,
                                                      max_files=room, on_field=hook)


async def add_voice(request: web.Request) -> web.Response:
    refused = _write_check(request)
    if refused is not None:
        return refused
    library = request.app[VOICES]
    try:
        voice = await library.add_clone(_reader(request, library))
    except MorpheusError as e:
        return _error(e)
    return web.json_response({"voice_id": voice.voice_id, "requires_verification": False})


async def get_voice(request: web.Request) -> web.Response:
    denied = key_error(request)
    if denied is not None:
        return denied

    voice_id = request.match_info["voice_id"]
    library = request.app[VOICES]
    stored = library.get(voice_id)
    if stored is not None:
        return web.json_response(stored_voice_json(library, stored))
    try:
        found = next((v for v in await engine_voices(request) if v.id == voice_id), None)
    except MorpheusError as e:
        return _error(e)
    if found is None:
        return _error(VoiceNotFound(voice_id))
    return web.json_response(voice_json(found))


async def edit_voice(request: web.Request) -> web.Response:
    refused = _write_check(request)
    if refused is not None:
        return refused
    library = request.app[VOICES]
    try:
        await library.edit(request.match_info["voice_id"], _reader(request, library))
    except MorpheusError as e:
        return _error(e)
    return web.json_response({"status": "ok"})


async def delete_voice(request: web.Request) -> web.Response:
    refused = _write_check(request)
    if refused is not None:
        return refused
    try:
        await request.app[VOICES].delete(request.match_info["voice_id"])
    except MorpheusError as e:
        return _error(e)
    return web.json_response({"status": "ok"})


def add_voice_routes(app: web.Application) -> None:
    app.router.add_post("/v1/voices/add", add_voice)
    app.router.add_get("/v1/voices/{voice_id}", get_voice)
    app.router.add_post("/v1/voices/{voice_id}/edit", edit_voice)
    app.router.add_delete("/v1/voices/{voice_id}", delete_voice)


__all__ = ["add_voice_routes"]
