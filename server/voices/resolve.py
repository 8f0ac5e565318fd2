"""A stored voice as a stream speaks it: its backend, the engine's voice or the reference clip,
and the defaults the request left unset. The one place a stored id is turned into these, for
every face (called from Orchestrator.open through server/core/voicebook.py).

A preset speaks on its backend; a request that names another backend is refused (its base
voice means nothing there). A clone speaks on the backend the request names, else the one it
prefers, else the active backend, else the first enabled backend that clones; a backend that
cannot clone is refused with the names of those that can. Speed 1.0 counts as unset (the
faces' default): a preset's speed applies then.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from adapters.base import Sampling
from server.core.stream import StreamSpec
from server.voices.errors import VoiceError
from server.voices.store import StoredVoice


class Engines(Protocol):
    """What resolution needs to know about the backends."""

    @property
    def active(self) -> str: ...

    @property
    def enabled(self) -> list[str]: ...

    def clones(self, backend: str) -> bool:
        """Whether `backend` can speak a clone (False when unknown or not importable)."""

    def cloning(self) -> list[str]:
        """Every known backend that clones, enabled or not."""


def apply(spec: StreamSpec, voice: StoredVoice, reference: str | None,
          engines: Engines) -> StreamSpec:
    """`spec` (whose `voice` is `voice`'s id) as it is spoken; VoiceError when it cannot be."""
    if voice.kind == "preset":
        return _preset(spec, voice)
    assert reference is not None
    backend = _clone_backend(spec, voice, engines)
    return replace(spec, backend=backend, voice=voice.voice_id, voice_id=voice.voice_id,
                   reference_audio=reference, language=spec.language or voice.language)


def _preset(spec: StreamSpec, voice: StoredVoice) -> StreamSpec:
    if spec.backend and spec.backend != voice.backend:
        raise VoiceError(f"voice {voice.voice_id!r} is a preset of backend {voice.backend!r}: "
                         f"ask for it without a backend, or with {voice.backend!r} (not "
                         f"{spec.backend!r})", field="voice")
    s = spec.sampling
    sampling = Sampling(
        temperature=s.temperature if s.temperature is not None else voice.temperature,
        top_p=s.top_p if s.top_p is not None else voice.top_p,
        repetition_penalty=(s.repetition_penalty if s.repetition_penalty is not None
                            else voice.repetition_penalty),
        max_tokens=s.max_tokens)
    speed = voice.speed if spec.speed == 1.0 and voice.speed else spec.speed
    return replace(spec, backend=voice.backend, voice=voice.base_voice, voice_id=voice.voice_id,
                   speed=speed, language=spec.language or voice.language, sampling=sampling)


def _clone_backend(spec: StreamSpec, voice: StoredVoice, engines: Engines) -> str:
    backend = clone_backend(spec.backend, voice, engines)
    if backend is None:
        raise VoiceError(f"voice {voice.voice_id!r} is a clone, and no enabled backend "
                         f"clones: {_cloning(engines)}", field="voice")
    if not engines.clones(backend):
        raise VoiceError(f"voice {voice.voice_id!r} is a clone, and backend {backend!r} "
                         f"cannot clone: {_cloning(engines)}", field="voice")
    return backend


def clone_backend(asked: str | None, voice: StoredVoice, engines: Engines) -> str | None:
    """The backend a clone speaks on when `asked` (a request's backend, or None) is named:
    None when nothing names one and no enabled backend clones. Raises nothing."""
    if asked:
        return asked
    if voice.backend and voice.backend in engines.enabled:
        return voice.backend
    if engines.clones(engines.active):
        return engines.active
    return next((b for b in engines.enabled if engines.clones(b)), None)


def _cloning(engines: Engines) -> str:
    names = engines.cloning()
    if not names:
        return "no backend of this server clones"
    enabled = [n for n in names if n in engines.enabled]
    listed = ", ".join(names)
    if enabled:
        return f"use one that does ({', '.join(enabled)}), e.g. model/backend {enabled[0]!r}"
    return f"engines that clone: {listed} (enable one in BACKENDS and set its URL)"


__all__ = ["Engines", "apply", "clone_backend"]
