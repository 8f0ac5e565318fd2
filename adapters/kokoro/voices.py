"""Kokoro voices: the style tables of a voices file (an .npz such as voices-v1.0.bin, each voice
a (510, 1, 256) float32 table: one style vector per phoneme count), each voice's language from
its name's first letter, and blends spelled as Kokoro-FastAPI spells them: `af_bella+af_sky`
(equal parts) or `af_bella(2)+af_sky(1)` (weighted), the weighted mean of the tables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adapters.errors import BackendUnavailable, BadRequest

STYLE_SHAPE = (510, 1, 256)
MAX_BLEND_PARTS = 8

# Kokoro's language letters (hexgrad/kokoro's pipeline codes), as BCP 47 tags.
LANGUAGES = {
    "a": "en-US", "b": "en-GB", "e": "es", "f": "fr", "h": "hi", "i": "it", "j": "ja",
    "p": "pt-BR", "z": "zh",
}
LANGUAGE_NAMES = {
    "a": "American English", "b": "British English", "e": "Spanish", "f": "French",
    "h": "Hindi", "i": "Italian", "j": "Japanese", "p": "Brazilian Portuguese",
    "z": "Mandarin Chinese",
}
GENDERS = {"f": "female", "m": "male"}
_PART = re.compile(r"^\s*([A-Za-z0-9_\-.]+)\s*(?:\(\s*([0-9]*\.?[0-9]+)\s*\))?\s*$")


def language_of(voice_id: str) -> str:
    """The voice's language from its first letter (`jf_alpha`: ja); unknown letters: en-US."""
    return LANGUAGES.get(voice_id[:1].lower(), "en-US")


def gender_of(voice_id: str) -> str | None:
    return GENDERS.get(voice_id[1:2].lower()) if "_" in voice_id else None


@dataclass(frozen=True)
class Style:
    """A voice or blend ready to speak: its canonical id and its style table."""

    id: str
    table: np.ndarray  # (510, 1, 256) float32
    language: str  # BCP 47; a blend speaks its first part's language

    def row(self, tokens: int) -> np.ndarray:
        """The style vector for a batch of `tokens` phonemes: row n - 1, as hexgrad's pipeline
        and kokoro-onnx index it ("n phonemes use row n - 1")."""
        index = min(max(tokens, 1), len(self.table)) - 1
        return np.asarray(self.table[index], dtype=np.float32).reshape(1, -1)


def load_voices(path: Path) -> dict[str, np.ndarray]:
    """Every voice of an .npz voices file; BackendUnavailable for a file that is not one or a
    voice whose table is not (510, 1, 256)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            tables = {name: np.asarray(data[name]) for name in data.files}
    except (OSError, ValueError, EOFError) as e:
        raise BackendUnavailable(f"voices file {path} is not a Kokoro voices archive "
                                 f"(.npz / voices-v1.0.bin): {e}", backend="kokoro") from e
    if not tables:
        raise BackendUnavailable(f"voices file {path} holds no voices", backend="kokoro")
    for name, table in tables.items():
        if table.shape != STYLE_SHAPE or not np.issubdtype(table.dtype, np.floating):
            raise BackendUnavailable(
                f"voices file {path}: voice {name!r} has shape {table.shape} "
                f"({table.dtype}), expected {STYLE_SHAPE} float32", backend="kokoro")
    return {name: table.astype(np.float32, copy=False) for name, table in tables.items()}


def voice_names(path: Path) -> list[str]:
    """The voices a file holds, read from the archive's index (no table is loaded)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return sorted(data.files)
    except (OSError, ValueError, EOFError, AttributeError) as e:
        raise BackendUnavailable(f"voices file {path} is not a Kokoro voices archive "
                                 f"(.npz / voices-v1.0.bin): {e}", backend="kokoro") from e


def parse_blend(spec: str) -> list[tuple[str, float]]:
    """`a+b` or `a(2)+b(1)` as (voice, weight) pairs; BadRequest for a malformed spec."""
    parts = spec.split("+")
    if len(parts) > MAX_BLEND_PARTS:
        raise BadRequest(f"a voice blend takes at most {MAX_BLEND_PARTS} voices",
                         field="voice")
    out = []
    for part in parts:
        match = _PART.match(part)
        if match is None:
            raise BadRequest(f"voice {spec!r}: cannot read {part!r} (write voice or "
                             "voice(weight), joined with +)", field="voice")
        weight = float(match.group(2)) if match.group(2) is not None else 1.0
        if weight <= 0:
            raise BadRequest(f"voice {spec!r}: weights must be positive", field="voice")
        out.append((match.group(1), weight))
    return out


def blend_id(parts: list[tuple[str, float]]) -> str:
    """One spelling per blend (weights as given, not normalised: `a(2)+b(1)`), so that equal
    blends share a cache entry; a single voice is its own name."""
    if len(parts) == 1:
        return parts[0][0]
    return "+".join(f"{name}({weight:g})" for name, weight in parts)


class VoiceTable:
    """The voices of one file and the styles asked for (blends included)."""

    def __init__(self, tables: dict[str, np.ndarray]) -> None:
        self._tables = dict(sorted(tables.items()))

    def names(self) -> list[str]:
        return list(self._tables)

    def style(self, spec: str) -> Style:
        """The style for a voice name or a blend; BadRequest names an unknown voice."""
        parts = parse_blend(spec)
        unknown = [name for name, _ in parts if name not in self._tables]
        if unknown:
            raise BadRequest(f"unknown Kokoro voice {unknown[0]!r}; voices: "
                             f"{', '.join(self._tables)}", field="voice")
        total = sum(weight for _, weight in parts)
        table = sum(self._tables[name].astype(np.float64) * (weight / total)
                    for name, weight in parts)
        return Style(blend_id(parts), np.asarray(table, dtype=np.float32),
                     language_of(parts[0][0]))


__all__ = [
    "GENDERS",
    "LANGUAGES",
    "LANGUAGE_NAMES",
    "STYLE_SHAPE",
    "Style",
    "VoiceTable",
    "blend_id",
    "gender_of",
    "language_of",
    "load_voices",
    "parse_blend",
    "voice_names",
]
