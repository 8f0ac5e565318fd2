"""Any Wyoming TTS server (wyoming-piper, Home Assistant add-ons) as an engine."""

from adapters.wyoming.adapter import WyomingAdapter

__all__ = ["WyomingAdapter"]
