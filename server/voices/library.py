"""The voice library of one app: stored voices under VOICES_DIR, added, edited and deleted by
the faces, and resolved for the stream core (it is the core's VoiceBook).

Decisions (docs/voices.md): a voice's id comes from its name, and names are unique
(casefolded): of two uploads of one name at once, the first to send its name wins and the
other gets a 409 at once; an id stored here shadows an engine voice of the same id.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from adapters import registry
from adapters.errors import MorpheusError
from server.core.backends import BackendPool
from server.core.stream import StreamSpec
from server.settings_store import SettingsStore
from server.voices import clips, resolve
from server.voices.errors import ClipRejected, VoiceConflict, VoiceError, VoiceNotFound
from server.voices.names import (
    check_base_voice,
    check_labels,
    check_name,
    check_text,
    is_voice_id,
    voice_id_for,
)
from server.voices.presets import PresetBody, check_language
from server.voices.store import ClipRecord, Lease, StoredVoice, VoiceStore
from server.voices.uploads import FieldHook, Limits, StagedFile, Upload

log = logging.getLogger("morpheus.voices")

REFERENCE = "reference.wav"
# Reads an upload into a staging folder, calling the hook as each text field arrives.
UploadReader = Callable[[Path, FieldHook, int], Awaitable[Upload]]


class VoiceLibrary:
    """Stored voices of one app (VOICES_DIR may change over POST /config: a store per folder)."""

    def __init__(self, settings: SettingsStore, pool: BackendPool) -> None:
        self._settings = settings
        self._pool = pool
        self._stores: dict[Path, VoiceStore] = {}
        self._learning: asyncio.Future[list[str]] | None = None  # which engines clone

    @property
    def store(self) -> VoiceStore:
        root = Path(self._settings.current.voices_dir).resolve()
        store = self._stores.get(root)
        if store is None:
            store = self._stores[root] = VoiceStore(root)
        return store

    @property
    def limits(self) -> Limits:
        s = self._settings.current
        return Limits(max_files=s.voice_max_files,
                      max_file_bytes=int(s.voice_max_file_mb * 1_000_000),
                      max_clip_s=s.voice_max_clip_s)

    # -- reading

    def voices(self) -> list[StoredVoice]:
        return self.store.voices()

    def get(self, voice_id: str) -> StoredVoice | None:
        return self.store.get(voice_id) if is_voice_id(voice_id) else None

    def clip_path(self, voice: StoredVoice, file: str) -> Path:
        return self.store.path(voice, file)

    def speaks_on(self, voice: StoredVoice) -> str | None:
        """The backend a request naming only this voice speaks on (None: no backend can)."""
        if voice.kind == "preset":
            return voice.backend
        return resolve.clone_backend(None, voice, self)

    # -- the core's VoiceBook (server/core/voicebook.py)

    def knows(self, voice: str) -> bool:
        return self.get(voice) is not None

    def apply(self, spec: StreamSpec) -> tuple[StreamSpec, Lease | None]:
        voice = self.get(spec.voice or "")
        if voice is None:
            return spec, None
        if voice.kind == "preset":
            return resolve.apply(spec, voice, None, self), None
        assert voice.reference is not None
        reference = str(self.store.path(voice, voice.reference))
        resolved = resolve.apply(spec, voice, reference, self)
        return resolved, self.store.lease(voice)

    # -- resolve.Engines

    @property
    def active(self) -> str:
        return str(self._settings.current.tts_backend)

    @property
    def enabled(self) -> list[str]:
        return list(self._settings.current.enabled_backends)

    def clones(self, backend: str) -> bool:
        if not self._pool.known(backend):
            return False
        if backend not in self.enabled:  # its class says; no instance of a disabled backend
            return _class_clones(backend)
        try:
            caps = self._pool.instance(backend).capabilities
        except MorpheusError:  # not importable here: try its class (what it declares)
            return _class_clones(backend)
        return caps.clones

    def cloning(self) -> list[str]:
        return [name for name in registry.BACKENDS if _class_clones(name)]

    # -- writing

    async def add_clone(self, read: UploadReader) -> StoredVoice:
        """A clone from an upload (`read` streams it into a staging folder): its name
        reserved as soon as it arrives, every file converted and checked, then stored."""
        store = self.store
        limits = self.limits
        staging = await asyncio.to_thread(store.stage)
        held: list[Callable[[], None]] = []  # the name's reservation, once it came

        def on_field(name: str, value: str) -> None:
            if name == "name" and not held:
                checked = check_name(value)
                held.append(store.reserve(voice_id_for(checked), checked))

        try:
            upload = await read(staging, on_field, limits.max_files)
            if not held:
                on_field("name", upload.fields.get("name", ""))
            name = check_name(upload.fields.get("name"))
            meta = _clone_fields(upload.fields, self)
            if not upload.files:
                raise ClipRejected("no files: a clone needs at least one audio clip",
                                   status=400)
            records = await _convert_all(upload.files, staging, limits.max_clip_s, start=1)
            await asyncio.to_thread(clips.join, [staging / r.file for r in records],
                                    staging / REFERENCE)
            voice = StoredVoice(voice_id=voice_id_for(name), name=name, kind="clone",
                                created_at=time.time(), clips=tuple(records),
                                reference=REFERENCE, **meta)
            voice = await store.add(voice, staging)
            log.info("stored clone %s (%d clip(s), %.1f s)", voice.voice_id, len(records),
                     sum(r.duration_ms for r in records) / 1000)
            return voice
        finally:
            for release in held:
                release()
            await asyncio.to_thread(shutil.rmtree, staging, True)

    async def add_preset(self, body: PresetBody) -> StoredVoice:
        name = check_name(body.name)
        if not self._pool.known(body.backend):
            raise VoiceError(f"unknown backend {body.backend!r}; known: "
                             f"{', '.join(registry.BACKENDS)}", field="backend")
        base = check_base_voice(body.voice)
        if base is not None and self.get(base) is not None:
            raise VoiceError(f"the base voice {base!r} is itself a stored voice: a preset's "
                             "voice is an engine's voice", field="voice")
        voice = StoredVoice(
            voice_id=voice_id_for(name), name=name, kind="preset", created_at=time.time(),
            description=check_text(body.description, "description"),
            labels=check_labels(body.labels), language=check_language(body.language),
            backend=body.backend, base_voice=base, speed=body.speed,
            temperature=body.temperature, top_p=body.top_p,
            repetition_penalty=body.repetition_penalty)
        stored = await self.store.add(voice, None)
        log.info("stored preset %s (%s, %s)", stored.voice_id, stored.backend,
                 stored.base_voice or "default voice")
        return stored

    async def edit(self, voice_id: str, read: UploadReader) -> StoredVoice:
        """ElevenLabs' edit: a new name, description or labels; files are added as clips."""
        store = self.store
        if not is_voice_id(voice_id):
            raise VoiceNotFound(voice_id)
        old = store.require(voice_id)
        limits = self.limits
        staging = await asyncio.to_thread(store.stage)
        try:
            room = limits.max_files - len(old.clips)
            upload = await read(staging, lambda _n, _v: None, max(room, 0))
            fields = upload.fields
            name = check_name(fields["name"]) if "name" in fields else old.name
            changes: dict[str, Any] = {"name": name}
            if "description" in fields:
                changes["description"] = check_text(fields["description"], "description")
            if "labels" in fields:
                changes["labels"] = _labels(fields["labels"])
            if upload.files and old.kind != "clone":
                raise VoiceError("a preset has no clips to add files to", field="files")
            if not upload.files:
                return await store.replace(voice_id, lambda v: v.model_copy(update=changes))
            records = await _convert_all(upload.files, staging, limits.max_clip_s,
                                         start=len(old.clips) + 1)

            def change(v: StoredVoice) -> StoredVoice:
                if len(v.clips) + len(records) > limits.max_files:
                    raise ClipRejected(f"too many files: at most {limits.max_files} clips per "
                                       "voice (VOICE_MAX_FILES)", status=413)
                if {r.file for r in v.clips} & {r.file for r in records}:
                    raise VoiceConflict(f"voice {voice_id!r} changed during this edit; send "
                                        "it again", field="files")
                for r in v.clips:  # the clips it had, linked into the new folder
                    _link(store.path(v, r.file), staging / r.file)
                every = (*v.clips, *records)
                clips.join([staging / r.file for r in every], staging / REFERENCE)
                return v.model_copy(update={**changes, "clips": every})

            return await store.replace(voice_id, change, staged=staging)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)

    async def delete(self, voice_id: str) -> StoredVoice:
        """Remove a voice; streams speaking it finish (its files go when they end)."""
        if not is_voice_id(voice_id):
            raise VoiceNotFound(voice_id)
        return await self.store.remove(voice_id)

    async def start(self) -> None:
        """At startup: remove what a crash left in VOICES_DIR (a folder that cannot be read
        is logged, not fatal), and start learning which engines clone (it imports every
        adapter class once: in a thread, meanwhile the server starts, not during a request)."""
        try:
            await asyncio.to_thread(self.store.sweep)
        except OSError as e:
            log.error("VOICES_DIR %s: %s", self.store.root, e)
        self._learning = asyncio.ensure_future(asyncio.to_thread(self.cloning))


@functools.cache
def _class_clones(name: str) -> bool:
    """Whether backend `name`'s adapter class declares that it clones (a fact of the code:
    computed once per process)."""
    try:
        caps = getattr(registry.load_class(name), "capabilities", None)
    except MorpheusError:
        return False
    return bool(caps is not None and getattr(caps, "clones", False))


def _labels(raw: str) -> dict[str, str]:
    """ElevenLabs sends labels as a JSON string (the SDK sends "null" when there are none)."""
    if not raw.strip():
        return {}
    try:
        return check_labels(json.loads(raw))
    except ValueError as e:
        raise VoiceError(f"labels must be a JSON object: {e}", field="labels") from e


def _clone_fields(fields: dict[str, str], library: VoiceLibrary) -> dict[str, Any]:
    labels = _labels(fields.get("labels", ""))
    backend = fields.get("backend", "").strip() or None
    if backend is not None and not library.clones(backend):
        raise VoiceError(f"backend {backend!r} cannot clone; engines that clone: "
                         f"{', '.join(library.cloning()) or 'none here'}", field="backend")
    return {"description": check_text(fields.get("description"), "description"),
            "labels": labels, "backend": backend,
            "language": check_language(fields.get("language") or labels.get("language"))}


async def _convert_all(files: list[StagedFile], staging: Path, max_s: float,
                       start: int) -> list[ClipRecord]:
    records = []
    for i, staged in enumerate(files, start=start):
        out = f"clip-{i}.wav"
        info = await asyncio.to_thread(clips.convert, staged.path, staging / out, max_s=max_s,
                                       label=staged.source_name)
        await asyncio.to_thread(staged.path.unlink)  # the original is not kept
        records.append(ClipRecord(file=out, source_name=staged.source_name,
                                  duration_ms=info.duration_ms, speech_ms=info.speech_ms,
                                  size_bytes=info.size_bytes, sha256=staged.sha256))
    return records


def _link(src: Path, dst: Path) -> None:
    try:
        dst.hardlink_to(src)  # same file system, no copy; the old folder may go later
    except OSError:
        shutil.copyfile(src, dst)


__all__ = ["REFERENCE", "UploadReader", "VoiceLibrary"]
