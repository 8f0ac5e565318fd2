"""SSML attribute readings: break lengths, prosody rates, phoneme alphabets.

Tags as ElevenLabs and the W3C spell them: `<break time="1.5s"/>` (or strength=...) becomes
silence, capped at FrontOptions.max_break_ms; `<prosody rate="slow|80%|1.2">` a Rate hint;
`<phoneme alphabet="ipa|cmu-arpabet" ph="...">` IPA (x-sampa is not converted: the text is said).
"""

from __future__ import annotations

import re

from dsp.textfront.arpabet import arpabet_to_ipa

_ATTR = re.compile(r"""([A-Za-z_:][\w:.-]{0,40})\s{0,5}=\s{0,5}(?:"([^"]{0,400})"|'([^']{0,400})')""")
_TIME = re.compile(r"\s*(\d{1,6}(?:\.\d{1,3})?)\s*(ms|s)?\s*", re.IGNORECASE)
_STRENGTH_MS = {"none": 0, "x-weak": 100, "weak": 250, "medium": 400, "strong": 750,
                "x-strong": 1200}
_RATES = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "default": 1.0, "fast": 1.25,
          "x-fast": 1.5}


def parse_attrs(s: str) -> dict[str, str]:
    return {m[1].lower(): (m[2] if m[2] is not None else m[3]) for m in _ATTR.finditer(s)}


def break_ms(attrs: dict[str, str], cap_ms: int) -> int:
    """Milliseconds of silence for a <break>: time wins over strength; medium by default."""
    if "time" in attrs:
        m = _TIME.fullmatch(attrs["time"])
        if m:
            value = float(m[1]) * (1000 if (m[2] or "ms").lower() == "s" else 1)
            return max(0, min(cap_ms, round(value)))
    return min(cap_ms, _STRENGTH_MS.get(attrs.get("strength", "medium").lower(), 400))


def prosody_speed(attrs: dict[str, str]) -> float | None:
    """A relative rate from prosody's rate attribute, bounded to 0.5..2; None if it has none."""
    rate = attrs.get("rate", "").strip().lower()
    if not rate:
        return None
    if rate in _RATES:
        return _RATES[rate]
    m = re.fullmatch(r"([+-]?\d{1,4}(?:\.\d{1,3})?)(%?)", rate)
    if not m:
        return None
    v = float(m[1])
    if m[2]:
        v = 1 + v / 100 if m[1][0] in "+-" else v / 100
    return max(0.5, min(2.0, v))


def phoneme_ipa(attrs: dict[str, str]) -> str | None:
    ph = attrs.get("ph", "").strip()
    alphabet = attrs.get("alphabet", "ipa").lower()
    if not ph:
        return None
    if alphabet == "ipa":
        return ph.strip("/")
    if alphabet in ("cmu-arpabet", "x-cmu", "arpabet"):
        return arpabet_to_ipa(ph)
    return None


__all__ = ["break_ms", "parse_attrs", "phoneme_ipa", "prosody_speed"]
