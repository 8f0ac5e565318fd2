"""What a preset is made of, checked: a backend, a base voice (or a blend such as Kokoro's
`jf_alpha(2)+jm_kumo(1)`: just a string here), and the defaults a request may leave unset."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from server.voices.errors import VoiceError

LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8}){0,3}")


class PresetBody(BaseModel):
    """POST /v1/audio/voices with a JSON body: a preset."""

    model_config = ConfigDict(extra="ignore")

    name: StrictStr
    backend: StrictStr = Field(min_length=1, max_length=64)
    voice: StrictStr | None = None  # the engine's voice; None: its default
    speed: float | None = Field(None, ge=0.25, le=4.0)
    language: StrictStr | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    repetition_penalty: float | None = Field(None, ge=1.0, le=2.0)
    description: StrictStr | None = None
    labels: dict[str, StrictStr] | None = None


def check_language(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if not LANGUAGE.fullmatch(value):
        raise VoiceError(f"{value!r} is not a language tag (en, en-US, pt-br ...)",
                         field="language")
    return value


__all__ = ["PresetBody", "check_language"]
