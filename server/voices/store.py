"""The library on disk: one manifest (voices.json) plus a folder of clips per clone.

    VOICES_DIR/
      voices.json               {"format": 1, "voices": [StoredVoice, ...]}  (atomic replace)
      .voices.lock              flock'd while the manifest is rewritten (replicas may share)
      v-<id>-<token>/           a clone's files: clip-1.wav ... and reference.wav
      .upload-<token>/          an upload in progress (its own files only)

Writes happen in this order: an upload is staged in its own `.upload-*` folder, checked and
converted there, then renamed into place and the manifest replaced, both under the lock; so a
reader sees the old library or the new one, never half a voice. A clone's folder is named
afresh on every change: a stream still speaking an old version (or a deleted voice) holds a
lease on its folder, which is removed only when the last lease is released. At startup,
folders the manifest does not name (left by a crash) are swept.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from server.voices.errors import VoiceConflict, VoiceNotFound

log = logging.getLogger("morpheus.voices")

MANIFEST = "voices.json"
LOCK_FILE = ".voices.lock"
STAGING_PREFIX = ".upload-"
FOLDER_PREFIX = "v-"
MANIFEST_FORMAT = 1
STALE_STAGING_S = 3600.0  # an upload folder this old belongs to no live upload


class ClipRecord(BaseModel):
    """One reference clip of a clone, as stored (24 kHz mono 16-bit WAV)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    file: str  # its name in the voice's folder
    source_name: str  # the uploaded file's name, for display
    duration_ms: float
    speech_ms: float  # of it, louder than the silence threshold
    size_bytes: int  # of the stored WAV
    sha256: str  # of the uploaded bytes


class StoredVoice(BaseModel):
    """A stored voice: a clone (clips) or a preset (a backend, a base voice, defaults)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    voice_id: str
    name: str
    kind: Literal["clone", "preset"]
    description: str = ""
    labels: dict[str, str] = {}
    created_at: float  # Unix time, seconds
    language: str | None = None
    backend: str | None = None  # preset: its engine; clone: the engine preferred (None: any)
    base_voice: str | None = None  # preset: the engine's voice, or a blend (None: its default)
    speed: float | None = None  # preset defaults, used when a request leaves them unset
    temperature: float | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    folder: str | None = None  # clone: its folder in VOICES_DIR
    clips: tuple[ClipRecord, ...] = ()
    reference: str | None = None  # clone: the clips joined, the file engines clone from


class Manifest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: int = MANIFEST_FORMAT
    voices: list[StoredVoice] = []


class Lease:
    """A stream's hold on a clone's folder (see the module docstring)."""

    def __init__(self, store: VoiceStore, folder: str) -> None:
        self._store = store
        self.folder = folder
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._store._release(self.folder)


class VoiceStore:
    """The manifest and folders under one VOICES_DIR. Reads are cheap (the manifest is read
    again only when it changed); writes are serialised in-process by an asyncio lock and
    across processes by flock, and each re-reads the manifest before changing it."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._voices: dict[str, StoredVoice] = {}
        self._seen: tuple[int, int] | None = None  # the manifest's (mtime_ns, size) read
        self._write = asyncio.Lock()
        self._reserved: set[str] = set()  # ids of uploads under way
        self._leases: Counter[str] = Counter()
        self._retired: set[str] = set()  # folders to remove when their last lease goes

    # -- reading

    def voices(self) -> list[StoredVoice]:
        self._refresh()
        return list(self._voices.values())

    def get(self, voice_id: str) -> StoredVoice | None:
        self._refresh()
        return self._voices.get(voice_id)

    def require(self, voice_id: str) -> StoredVoice:
        voice = self.get(voice_id)
        if voice is None:
            raise VoiceNotFound(voice_id)
        return voice

    def path(self, voice: StoredVoice, file: str) -> Path:
        assert voice.folder is not None
        return self.root / voice.folder / file

    def _refresh(self, force: bool = False) -> None:
        """Read the manifest again when it changed on disk (another replica wrote it)."""
        path = self.root / MANIFEST
        try:
            st = path.stat()
        except FileNotFoundError:
            self._voices, self._seen = {}, None
            return
        seen = (st.st_mtime_ns, st.st_size)
        if seen == self._seen and not force:
            return
        try:
            manifest = Manifest.model_validate_json(path.read_bytes())
        except (OSError, ValidationError, ValueError) as e:
            log.error("%s is unreadable (%s); keeping the voices read before", path, e)
            return
        self._voices = {v.voice_id: v for v in manifest.voices}
        self._seen = seen

    # -- uploads: a reserved id and a staging folder of their own

    def reserve(self, voice_id: str, name: str) -> Callable[[], None]:
        """Hold `voice_id` for an upload under way (another upload of it gets a 409 at once
        rather than after sending its files); returns the release."""
        self.check_free(voice_id, name)
        if voice_id in self._reserved:
            raise VoiceConflict(f"another upload of a voice named {name!r} is under way")
        self._reserved.add(voice_id)
        return lambda: self._reserved.discard(voice_id)

    def check_free(self, voice_id: str, name: str, *, other_than: str | None = None) -> None:
        """VoiceConflict when a stored voice has this id or name (names compare casefolded)."""
        self._refresh()
        for v in self._voices.values():
            if v.voice_id == other_than:
                continue
            if v.voice_id == voice_id or v.name.casefold() == name.casefold():
                raise VoiceConflict(f"a voice named {v.name!r} (id {v.voice_id!r}) exists; "
                                    "pick another name, or delete that voice first")

    def stage(self) -> Path:
        """A new, empty folder for one upload's files (blocking)."""
        self.root.mkdir(parents=True, exist_ok=True)
        folder = self.root / f"{STAGING_PREFIX}{secrets.token_hex(6)}"
        folder.mkdir()
        return folder

    # -- writing

    async def add(self, voice: StoredVoice, staged: Path | None) -> StoredVoice:
        """Store a new voice (a clone's files from `staged`); VoiceConflict if its id or
        name was taken meanwhile (by another replica)."""
        def commit(voices: dict[str, StoredVoice]) -> StoredVoice:
            self.check_free(voice.voice_id, voice.name)
            done = voice
            if staged is not None:
                done = voice.model_copy(update={"folder": self._place(voice.voice_id, staged)})
            voices[done.voice_id] = done
            return done

        return await self._change(commit)

    async def replace(self, voice_id: str, change: Callable[[StoredVoice], StoredVoice],
                      staged: Path | None = None) -> StoredVoice:
        """Replace a voice by `change(old)`; with `staged`, its folder becomes that one (the
        old folder is retired). `change` runs under the lock and may raise."""
        retired: list[str] = []

        def commit(voices: dict[str, StoredVoice]) -> StoredVoice:
            old = voices.get(voice_id)
            if old is None:
                raise VoiceNotFound(voice_id)
            new = change(old)
            self.check_free(new.voice_id, new.name, other_than=voice_id)
            if staged is not None:
                new = new.model_copy(update={"folder": self._place(voice_id, staged)})
                if old.folder:
                    retired.append(old.folder)
            voices[voice_id] = new
            return new

        new = await self._change(commit)
        for folder in retired:
            self._retire(folder)
        return new

    async def remove(self, voice_id: str) -> StoredVoice:
        """Delete a voice from the manifest; its files go once no stream holds them."""
        def commit(voices: dict[str, StoredVoice]) -> StoredVoice:
            old = voices.pop(voice_id, None)
            if old is None:
                raise VoiceNotFound(voice_id)
            return old

        old = await self._change(commit)
        if old.folder:
            self._retire(old.folder)
        return old

    async def _change(self, commit: Callable[[dict[str, StoredVoice]], StoredVoice]
                      ) -> StoredVoice:
        async with self._write:
            return await asyncio.to_thread(self._locked_change, commit)

    def _locked_change(self, commit: Callable[[dict[str, StoredVoice]], StoredVoice]
                       ) -> StoredVoice:
        with self._flock():
            self._refresh(force=True)
            voices = dict(self._voices)
            result = commit(voices)
            self._write_manifest(list(voices.values()))
            self._voices = voices
            return result

    @contextlib.contextmanager
    def _flock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_FILE, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _place(self, voice_id: str, staged: Path) -> str:
        folder = f"{FOLDER_PREFIX}{voice_id}-{secrets.token_hex(4)}"
        os.rename(staged, self.root / folder)  # same file system: atomic
        return folder

    def _write_manifest(self, voices: list[StoredVoice]) -> None:
        path = self.root / MANIFEST
        tmp = self.root / f".{MANIFEST}.{secrets.token_hex(4)}.tmp"
        data = Manifest(voices=voices).model_dump_json(indent=2).encode()
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        st = path.stat()
        self._seen = (st.st_mtime_ns, st.st_size)

    # -- leases: files outlive a delete while streams use them

    def lease(self, voice: StoredVoice) -> Lease:
        assert voice.folder is not None
        self._leases[voice.folder] += 1
        return Lease(self, voice.folder)

    def leases(self, folder: str) -> int:
        return self._leases[folder]

    def _release(self, folder: str) -> None:
        self._leases[folder] -= 1
        if self._leases[folder] <= 0:
            del self._leases[folder]
            if folder in self._retired:
                self._retired.discard(folder)
                self._remove_folder(folder)

    def _retire(self, folder: str) -> None:
        if self._leases[folder] > 0:
            self._retired.add(folder)
            log.info("voice folder %s is in use; removed when its streams end", folder)
        else:
            self._remove_folder(folder)

    def _remove_folder(self, folder: str) -> None:
        path = self.root / folder
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            shutil.rmtree(path, ignore_errors=True)
            return
        loop.run_in_executor(None, shutil.rmtree, path, True)

    # -- housekeeping

    def sweep(self) -> list[str]:
        """Remove what no voice names: folders a crash left, and stale uploads (blocking).
        Returns the names removed."""
        if not self.root.is_dir():
            return []
        removed = []
        with self._flock():
            self._refresh(force=True)
            named = {v.folder for v in self._voices.values() if v.folder}
            now = time.time()
            for entry in self.root.iterdir():
                if not entry.is_dir() or entry.is_symlink():
                    continue
                orphan = entry.name.startswith(FOLDER_PREFIX) and entry.name not in named \
                    and entry.name not in self._leases
                stale = entry.name.startswith(STAGING_PREFIX) \
                    and now - entry.stat().st_mtime > STALE_STAGING_S
                if orphan or stale:
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry.name)
        if removed:
            log.info("swept %d leftover folder(s) from %s: %s", len(removed), self.root,
                     ", ".join(removed))
        return removed


__all__ = ["ClipRecord", "Lease", "Manifest", "StoredVoice", "VoiceStore"]
