"""Piper (onnxruntime, in-process): the default engine; a sentence's audio streams window by
window from the voice's cut graph."""

from adapters.piper.adapter import PiperAdapter, bundled_voice_path

__all__ = ["PiperAdapter", "bundled_voice_path"]
