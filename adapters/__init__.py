"""Engines behind one interface: the adapter contract, the registry and the backends."""

from adapters.base import (
    PIPELINE_RATE_HZ,
    AdapterSession,
    AudioChunk,
    Capabilities,
    Health,
    Sampling,
    TTSAdapter,
    TTSInput,
    Voice,
    WordTiming,
    iterate_in_thread,
)
from adapters.errors import (
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    EngineError,
    MorpheusError,
    NoAudioError,
    TTSError,
)

__all__ = [
    "PIPELINE_RATE_HZ",
    "AdapterSession",
    "AudioChunk",
    "BackendTimeout",
    "BackendUnavailable",
    "BadRequest",
    "Capabilities",
    "EngineError",
    "Health",
    "MorpheusError",
    "NoAudioError",
    "Sampling",
    "TTSAdapter",
    "TTSError",
    "TTSInput",
    "Voice",
    "WordTiming",
    "iterate_in_thread",
]
