"""A multipart upload (`name`, `files`, `description`, `labels`, ...) read part by part into a
staging folder, within bounds: files are streamed to disk in 64 KiB pieces and hashed on the
way, never held whole; the count, each file's size and each text field's length are checked
as the bytes arrive, so an oversized upload is refused without being read to its end.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from server.voices.errors import ClipRejected, VoiceError
from server.voices.names import display_file_name

PIECE_BYTES = 64 * 1024
FIELD_MAX_BYTES = 8 * 1024  # a text field (name, description, labels JSON ...)
MAX_FIELDS = 32  # text parts, whatever their names
FILE_FIELDS = ("files", "files[]", "file")  # ElevenLabs' name, a form's, and a single file's


@dataclass(frozen=True)
class Limits:
    """How much one voice may be: clips, bytes per uploaded file, seconds per clip."""

    max_files: int
    max_file_bytes: int
    max_clip_s: float


@dataclass(frozen=True)
class StagedFile:
    """An uploaded file, as sent, in the staging folder."""

    path: Path
    source_name: str  # for display only
    size_bytes: int
    sha256: str


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[StagedFile] = field(default_factory=list)


FieldHook = Callable[[str, str], None]  # (field name, value) as each text field arrives


async def read_multipart(request: web.Request, staging: Path, limits: Limits, *,
                         max_files: int | None = None,
                         on_field: FieldHook | None = None) -> Upload:
    """The request's multipart body, files written under `staging`. `max_files`: how many
    files this request may still add (default: limits.max_files). VoiceError (400/413)
    when the body is not multipart or breaks a bound; `on_field` may raise to stop early."""
    if not request.content_type.startswith("multipart/"):
        raise VoiceError(f"send multipart/form-data (name, files), not {request.content_type!r}",
                         field="Content-Type", status=415)
    allowed = limits.max_files if max_files is None else max_files
    upload = Upload()
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise VoiceError("nested multipart bodies are not accepted", field="files")
            name = part.name or ""
            if name in FILE_FIELDS or part.filename is not None:
                if name not in FILE_FIELDS:
                    raise VoiceError(f"unexpected file in field {name!r}; send clips as "
                                     "'files'", field=name)
                if len(upload.files) >= allowed:
                    raise ClipRejected(f"too many files: at most {limits.max_files} clips per "
                                       "voice (VOICE_MAX_FILES)", status=413)
                upload.files.append(await _save(part, staging, len(upload.files) + 1,
                                                limits.max_file_bytes))
                continue
            if len(upload.fields) >= MAX_FIELDS:
                raise VoiceError("too many form fields", field=name)
            value = await _text(part, name)
            upload.fields[name] = value
            if on_field is not None:
                on_field(name, value)
    except (ValueError, asyncio.IncompleteReadError, HttpProcessingError) as e:  # malformed
        raise VoiceError(f"malformed multipart body: {e}", field="body") from e
    return upload


async def _text(part: BodyPartReader, name: str) -> str:
    data = bytearray()
    while True:
        piece = await part.read_chunk(PIECE_BYTES)
        if not piece:
            break
        data += piece
        if len(data) > FIELD_MAX_BYTES:
            raise VoiceError(f"field {name!r} is over {FIELD_MAX_BYTES} bytes", field=name,
                             status=413)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise VoiceError(f"field {name!r} is not UTF-8 text", field=name) from e


async def _save(part: BodyPartReader, staging: Path, n: int, max_bytes: int) -> StagedFile:
    label = display_file_name(part.filename)
    path = staging / f"upload-{n}"
    digest = hashlib.sha256()
    size = 0
    f: BinaryIO = await asyncio.to_thread(open, path, "wb")
    try:
        while True:
            piece = await part.read_chunk(PIECE_BYTES)
            if not piece:
                break
            size += len(piece)
            if size > max_bytes:
                raise ClipRejected(f"{label} is over {max_bytes / 1e6:g} MB "
                                   "(VOICE_MAX_FILE_MB)", status=413)
            digest.update(piece)
            await asyncio.to_thread(f.write, piece)
    finally:
        await asyncio.to_thread(f.close)
    if size == 0:
        raise ClipRejected(f"{label} is empty")
    return StagedFile(path, label, size, digest.hexdigest())


__all__ = ["FILE_FIELDS", "FieldHook", "Limits", "StagedFile", "Upload", "read_multipart"]
