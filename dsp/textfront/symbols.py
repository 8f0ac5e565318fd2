"""Characters a listener should not hear: emoji and pictographs, invisible and control characters.

Decisions (documented for the README):
- Emoji, pictographs, dingbats (✓ ✔ ✗ ★), box drawing, geometric shapes, arrows other than
  rightward ones, variation selectors, zero-width joiners, skin tones and tag characters are
  silent by default; EmojiPolicy.NAME says a pictograph's Unicode name instead ("party popper").
- A keycap keeps its digit: "1️⃣" is "1" + U+FE0F + U+20E3, and only the last two go.
- Rightward arrows (→ ⇒ ➡ ⟶, and "->", "=>") are kept for the normalizer, which reads
  "A → B" as "A to B"; other arrows are silent.
- Control and format characters (bidi marks, zero-width space, soft hyphen, BOM), lone
  surrogates, non-characters and private-use code points are dropped.
"""

from __future__ import annotations

import re
import unicodedata

_PICTO = (
    "\U0001F000-\U0001FAFF\U0001FB00-\U0001FBFF\u2600-\u26FF\u2700-\u27A0\u27A2-\u27BF"
    "\u2B00-\u2BFF\u2300-\u23FF\u25A0-\u25FF\u2500-\u259F\u2190-\u2191\u2193-\u21D1"
    "\u21D3-\u21FF\u3030\u303D\u3297\u3299\u00A9\u00AE\u2122\u2139\u24C2\u2934\u2935"
    "\u2022\u2023\u2043\u27F0-\u27F5\u27F7-\u27FF\u2900-\u2933\u2936-\u297F"
)
_INVISIBLE = (
    "\uFE00-\uFE0F\u200D\u20E3\U000E0000-\U000E007F\U000E0100-\U000E01EF"
    "\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F\r\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064"
    "\u2066-\u2069\uFEFF\u00AD\ud800-\udfff\uFFF0-\uFFFF\uE000-\uF8FF\U000F0000-\U0010FFFF"
)
SPECIAL_CLASS = f"[{_PICTO}{_INVISIBLE}]"
SPECIAL = re.compile(SPECIAL_CLASS)
_PICTO_RE = re.compile(f"[{_PICTO}]")
_UNNAMED = re.compile("[\U0001F1E6-\U0001F1FF\U0001F3FB-\U0001F3FF]")  # flags' letters, skin tones


def emoji_name(ch: str) -> str:
    """A pictograph's name as words ("party popper"); "" for the invisible ones."""
    if not _PICTO_RE.fullmatch(ch) or _UNNAMED.fullmatch(ch):
        return ""
    name = unicodedata.name(ch, "")
    return name.lower().replace("-", " ")


__all__ = ["SPECIAL", "SPECIAL_CLASS", "emoji_name"]
