"""What every face checks of a whole text before it opens a stream."""

from __future__ import annotations

from dsp.text import clean_text, has_speech


def speakable(text: str) -> str:
    """`text` cleaned for engines; ValueError (a 400 naming the field) when nothing is left
    to say. Every face checks whole-text input with this before opening a stream."""
    if not text.strip():
        raise ValueError("must not be empty")
    cleaned = clean_text(text)
    if not has_speech(cleaned):
        raise ValueError("nothing speakable: no letters or digits once control characters "
                         "and invalid code points are removed")
    return cleaned


__all__ = ["speakable"]
