"""Names, ids and labels of stored voices, checked: nothing a client sends becomes a path.

A voice's id is derived from its name (lowercase ASCII letters, digits, `-`), so it reads well
in every voice list (Home Assistant's included) and is the same on every face. Names that try
to name a place (`/`, `\\`, `..`, a leading dot) or carry control characters are refused
rather than cleaned, so a client learns that its name was not taken as given.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from server.voices.errors import VoiceError

NAME_MAX_CHARS = 100
ID_MAX_CHARS = 48
DESCRIPTION_MAX_CHARS = 1000
LABELS_MAX = 16
LABEL_KEY_MAX_CHARS = 32
LABEL_VALUE_MAX_CHARS = 100
BASE_VOICE_MAX_CHARS = 200  # an engine voice, or a blend such as "af_bella(2)+af_sky(1)"
ID_PATTERN = re.compile(rf"[a-z0-9][a-z0-9_-]{{0,{ID_MAX_CHARS - 1}}}")


def _printable(text: str) -> bool:
    return not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
                   for ch in text)


def check_name(name: str | None) -> str:
    """The name, stripped; VoiceError saying what is wrong with it."""
    name = (name or "").strip()
    if not name:
        raise VoiceError("a voice needs a name", field="name")
    if len(name) > NAME_MAX_CHARS:
        raise VoiceError(f"the name is {len(name)} characters; at most {NAME_MAX_CHARS}",
                         field="name")
    if not _printable(name):
        raise VoiceError("the name holds control characters", field="name")
    if "/" in name or "\\" in name or ".." in name or name.startswith("."):
        raise VoiceError(f"the name {name!r} looks like a path: '/', '\\', '..' and a leading "
                         "'.' are not allowed", field="name")
    return name


def voice_id_for(name: str) -> str:
    """The id a name gets: "Grandpa Joe" -> "grandpa-joe"; a name without ASCII letters or
    digits gets "voice-" and a short hash of it."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:ID_MAX_CHARS].strip("-")
    if not slug:
        slug = "voice-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return slug


def is_voice_id(text: str) -> bool:
    """Whether `text` could be a stored voice's id (anything else is not looked up)."""
    return bool(ID_PATTERN.fullmatch(text))


def check_text(value: str | None, field: str, limit: int = DESCRIPTION_MAX_CHARS) -> str:
    value = (value or "").strip()
    if len(value) > limit:
        raise VoiceError(f"{field} is {len(value)} characters; at most {limit}", field=field)
    if not _printable(value.replace("\n", " ").replace("\t", " ")):
        raise VoiceError(f"{field} holds control characters", field=field)
    return value


def check_labels(labels: object) -> dict[str, str]:
    """ElevenLabs' `labels`: a flat object of short strings (language, accent, gender, age)."""
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise VoiceError("labels must be a JSON object of strings", field="labels")
    if len(labels) > LABELS_MAX:
        raise VoiceError(f"at most {LABELS_MAX} labels", field="labels")
    out = {}
    for key, value in labels.items():
        if value is None:
            continue
        if not isinstance(key, str) or not isinstance(value, (str, int, float, bool)):
            raise VoiceError("labels must be a JSON object of strings", field="labels")
        out[check_text(key, "labels", LABEL_KEY_MAX_CHARS)] = check_text(
            str(value), "labels", LABEL_VALUE_MAX_CHARS)
    return out


def check_base_voice(voice: str | None) -> str | None:
    """A preset's engine voice (or blend): short, printable, not a path."""
    if voice is None or not voice.strip():
        return None
    voice = check_text(voice, "voice", BASE_VOICE_MAX_CHARS)
    if "/" in voice or "\\" in voice or ".." in voice:
        raise VoiceError("the base voice looks like a path", field="voice")
    return voice


def display_file_name(name: str | None) -> str:
    """An uploaded file's name for display only (never a path here): its last component,
    printable, at most 100 characters."""
    base = re.split(r"[/\\]", name or "")[-1]
    base = "".join(ch for ch in base if _printable(ch))[:NAME_MAX_CHARS]
    return base or "clip"


__all__ = ["ID_PATTERN", "check_base_voice", "check_labels", "check_name", "check_text",
           "display_file_name", "is_voice_id", "voice_id_for"]
