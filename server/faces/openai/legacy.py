"""Orpheus-FastAPI's legacy routes: POST /speak writes a WAV into the outputs folder, and
GET /outputs/<file> serves it; the folder keeps the newest OUTPUTS_MAX_FILES.

Pruning deletes only files Morpheus wrote there: their names are kept in a manifest in the
folder, so pointing OUTPUTS_DIR at a folder of one's own never costs a file.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

from aiohttp import web

from adapters.errors import MorpheusError
from server.app_keys import SETTINGS
from server.core.stream import StreamSpec
from server.errors import (
    from_morpheus,
    json_error,
    read_request,
)
from server.faces.input import speakable
from server.faces.openai.requests import LegacySpeakRequest
from server.faces.openai.speech import open_stream
from server.faces.whole_audio import write_wav

MANIFEST = ".morpheus-outputs"  # one name per line: the files Morpheus wrote here, oldest first
OUTPUTS_LOCK: web.AppKey[asyncio.Lock] = web.AppKey("outputs_lock", asyncio.Lock)


def output_path(outputs: Path, voice: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    safe = "".join(c for c in voice if c.isalnum() or c in "-_")[:64] or "voice"
    path = outputs / f"{safe}_{stamp}.wav"
    n = 1
    while path.exists():  # Orpheus overwrote same-second files; we keep both
        path = outputs / f"{safe}_{stamp}_{n}.wav"
        n += 1
    return path


def record_and_prune(outputs: Path, written: str, keep: int) -> None:
    """Add `written` to the manifest; delete the oldest files it lists beyond `keep`."""
    manifest = outputs / MANIFEST
    names = manifest.read_text().split("\n") if manifest.exists() else []
    names = [n for n in names if n and n != written and (outputs / n).is_file()] + [written]
    for old in names[: max(0, len(names) - keep)]:
        (outputs / old).unlink(missing_ok=True)
    manifest.write_text("\n".join(names[max(0, len(names) - keep):]) + "\n")


async def legacy_speak(request: web.Request) -> web.Response:
    """POST /speak exactly as Orpheus-FastAPI answered: JSON pointing at /outputs/<file>.wav."""
    req = await read_request(request, LegacySpeakRequest)
    if isinstance(req, web.Response):
        return req
    if not req.text or not req.text.strip():
        return web.json_response({"error": "Missing 'text'"}, status=400)
    try:
        text = speakable(req.text)
    except ValueError as e:
        return json_error(400, f"text: {e}", field="text")
    settings = request.app[SETTINGS].current
    if len(text) > settings.max_input_chars:
        return json_error(413, "text too long", field="text")
    t0 = time.perf_counter()
    opened = await open_stream(request, StreamSpec(voice=req.voice, transport="http"), text)
    if isinstance(opened, web.Response):
        return opened
    outputs = settings.outputs_dir
    await asyncio.to_thread(outputs.mkdir, parents=True, exist_ok=True)
    async with request.app[OUTPUTS_LOCK]:  # names and the manifest, one writer at a time
        path = output_path(outputs, req.voice)
        await asyncio.to_thread(path.touch)  # claim the name before the lock is released
    try:
        await write_wav(opened, path)
    except MorpheusError as e:
        return from_morpheus(e)
    finally:
        await opened.aclose()
    async with request.app[OUTPUTS_LOCK]:
        await asyncio.to_thread(record_and_prune, outputs, path.name, settings.outputs_max_files)
    return web.json_response({
        "status": "ok", "voice": req.voice, "output_file": f"outputs/{path.name}",
        "generation_time": round(time.perf_counter() - t0, 2),
    }, headers={"X-Backend": opened.backend, "X-Request-ID": opened.id})


async def serve_output(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    outputs = request.app[SETTINGS].current.outputs_dir.resolve()
    path = (outputs / name).resolve()
    if path.parent != outputs or not path.is_file() or path.name == MANIFEST:
        return json_error(404, "no such output file", field="name")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


def add_legacy_routes(app: web.Application) -> None:
    app[OUTPUTS_LOCK] = asyncio.Lock()
    app.router.add_post("/speak", legacy_speak)
    app.router.add_get("/outputs/{name}", serve_output)


__all__ = ["MANIFEST", "add_legacy_routes", "output_path", "record_and_prune"]
