"""Text as every engine can take it: control characters dropped, invalid code points replaced.

Every face (HTTP, WebSocket, WebRTC, ElevenLabs, Wyoming) hands text through `clean_text`
before an engine sees it; `has_speech` says whether anything is left to say.
"""

from __future__ import annotations

import unicodedata

_KEEP_CONTROLS = frozenset("\n\t")


def clean_text(text: str) -> str:
    """Drop control characters except newline and tab (a carriage return becomes a newline);
    replace lone surrogates and non-characters, which no engine can encode, with a space."""
    if text.isprintable():  # the common case costs one C-level scan
        return text
    out: list[str] = []
    for ch in text.replace("\r\n", "\n").replace("\r", "\n"):
        if ch in _KEEP_CONTROLS:
            out.append(ch)
            continue
        cp = ord(ch)
        if 0xD800 <= cp <= 0xDFFF or (cp & 0xFFFE) == 0xFFFE or 0xFDD0 <= cp <= 0xFDEF:
            out.append(" ")
        elif unicodedata.category(ch) != "Cc":
            out.append(ch)
    return "".join(out)


def has_speech(text: str) -> bool:
    """Whether `text` holds anything an engine can say: a letter or a digit, in any script."""
    return any(ch.isalnum() for ch in text)


__all__ = ["clean_text", "has_speech"]
