"""The ElevenLabs API (or any server that speaks it) as an engine: HTTP segments, or one
multi-context WebSocket session per stream for text that arrives in pieces."""

from adapters.elevenlabs.adapter import ElevenLabsAdapter

__all__ = ["ElevenLabsAdapter"]
