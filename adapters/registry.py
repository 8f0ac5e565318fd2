"""Backend names -> lazily imported adapter classes; a missing dependency is reported, not fatal."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.base import TTSAdapter
from adapters.errors import BackendUnavailable, BadRequest


@dataclass(frozen=True)
class BackendEntry:
    name: str
    target: str  # "module:Class"
    extra: str | None  # pip extra that brings its optional dependencies
    description: str
    # Settings it cannot work without: at least one of them must be given (set, and not left
    # at its default). Empty: it works with the defaults. Checked when it is named active or
    # fallback (server/config.py), so a server never starts with a backend that cannot speak.
    requires: tuple[str, ...] = ()


BACKENDS: dict[str, BackendEntry] = {
    e.name: e
    for e in (
        BackendEntry("piper", "adapters.piper:PiperAdapter", None,
                     "Piper (onnxruntime, in-process), bundled en_US joe voice"),
        BackendEntry("espeak", "adapters.espeak:EspeakAdapter", None,
                     "espeak-ng subprocess, formant voice; the fallback"),
        BackendEntry("synthetic", "adapters.synthetic:SyntheticAdapter", None,
                     "deterministic tones with latency/RTF/stall/failure knobs"),
        BackendEntry("snac_llamacpp", "adapters.orpheus:SnacLlamaCppAdapter", "snac",
                     "Orpheus tokens from llama.cpp (HTTP or in-process GGUF), SNAC decode"),
        BackendEntry("wyoming", "adapters.wyoming:WyomingAdapter", None,
                     "any Wyoming TTS server (wyoming-piper, Home Assistant add-ons)",
                     requires=("wyoming_tts_uri",)),
        BackendEntry("command", "adapters.command:CommandAdapter", None,
                     "any local command-line engine: text on stdin, WAV or raw PCM on stdout",
                     requires=("command_tts",)),
        # The public API without a key is never contacted (the adapter's "not configured").
        BackendEntry("elevenlabs", "adapters.elevenlabs:ElevenLabsAdapter", None,
                     "the ElevenLabs API or any server that speaks it (HTTP and WebSocket)",
                     requires=("elevenlabs_api_key", "elevenlabs_base_url")),
        BackendEntry("openai_tts", "adapters.openai_tts:OpenAITTSAdapter", None,
                     "any OpenAI-compatible /v1/audio/speech upstream (OPENAI_TTS_BASE_URL)",
                     requires=("openai_tts_base_url",)),
        BackendEntry("xtts", "adapters.xtts:XttsAdapter", None,
                     "Coqui XTTS servers: xtts-streaming-server or xtts-api-server (XTTS_URL)",
                     requires=("xtts_url",)),
        BackendEntry("coqui", "adapters.coqui:CoquiAdapter", None,
                     "Coqui TTS tts-server /api/tts, one segment at a time (COQUI_URL)",
                     requires=("coqui_url",)),
        BackendEntry("kokoro", "adapters.kokoro:KokoroAdapter", "kokoro",
                     "Kokoro-82M (onnxruntime, in-process), streamed inside a sentence"),
    )
}


def backend_names() -> list[str]:
    return list(BACKENDS)


def load_class(name: str) -> type[TTSAdapter]:
    """Import a backend's adapter class; BackendUnavailable names the extra when one is missing."""
    entry = BACKENDS.get(name)
    if entry is None:
        raise BadRequest(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}", field="backend")
    module_name, _, cls_name = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        hint = f" (pip install 'morpheus-tts[{entry.extra}]')" if entry.extra else ""
        raise BackendUnavailable(f"{name}: missing dependency {e.name or e}{hint}",
                                 backend=name) from e
    cls: type[TTSAdapter] = getattr(module, cls_name)
    return cls


def create(name: str, options: Mapping[str, Any]) -> TTSAdapter:
    """Build a backend from the flat settings mapping (each adapter picks its own keys)."""
    return load_class(name).from_options(options)
