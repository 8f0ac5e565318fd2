"""Orpheus (backend `snac_llamacpp`): SNAC tokens from llama.cpp (HTTP or in-process GGUF),
parsed, windowed and decoded by SNAC (torch or ONNX) in a shared decoder worker."""

from adapters.orpheus.adapter import SnacLlamaCppAdapter

__all__ = ["SnacLlamaCppAdapter"]
