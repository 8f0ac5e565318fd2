"""English normalization: numbers, money, dates, times, units, URLs, abbreviations, initialisms."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from dsp.textfront.en import rules
from dsp.textfront.en.numbers import cardinal, digits, ordinal
from dsp.textfront.en.patterns import MASTER
from dsp.textfront.en.tables import STICKY_CASED, STICKY_WORDS
from dsp.textfront.normalizer import Rewrite

if TYPE_CHECKING:
    from dsp.textfront.options import FrontOptions

_DOTTED = re.compile(r"(?:[A-Za-z]\.){2,6}")
_STRIP = ".,;:!?\"'()[]{}*_`~“”‘’"
_DATE_FORMATS = {"mdy": r"(\d{1,2})\D(\d{1,2})\D(\d{2,4})", "dmy": r"(\d{1,2})\D(\d{1,2})\D(\d{2,4})",
                 "ymd": r"(\d{4})\D(\d{1,2})\D(\d{1,2})"}


class EnglishNormalizer:
    """Rewrites found by one bounded tokenizing expression (patterns.MASTER), said per rules."""

    def rewrites(self, text: str, options: FrontOptions) -> list[Rewrite]:
        order = options.date_order.value
        out: list[Rewrite] = []
        for m in MASTER.finditer(text):
            kind = m.lastgroup or ""
            say = rules.RULES[kind](m, text, order)
            if say is None or say == m.group():
                continue
            start, end = m.span()
            if say.strip():
                if start > 0 and text[start - 1].isalnum():
                    say = " " + say  # "R&D" -> "R and D", "5x" stays one rewrite
                if end < len(text) and text[end].isalnum():
                    say += " "
            out.append(Rewrite(start, end, say))
        return out

    def say_as(self, interpret_as: str, text: str, fmt: str | None,
               options: FrontOptions) -> str | None:
        kind = interpret_as.lower().strip()
        body = text.strip()
        if kind in ("characters", "spell-out", "verbatim", "letters"):
            return " ".join(digits(c) if c.isdigit() else c for c in body if not c.isspace())
        if kind == "digits":
            return digits(body) or None
        if kind in ("cardinal", "number"):
            n = re.sub(r"[,\s]", "", body)
            return cardinal(int(n)) if n.isdigit() and len(n) <= 15 else None
        if kind == "ordinal":
            n = re.sub(r"(?i)[,\s]|st$|nd$|rd$|th$", "", body)
            return ordinal(int(n)) if n.isdigit() and len(n) <= 15 else None
        if kind == "telephone":
            return rules.phone(re.match(r"[\s\S]*", body), body, "mdy")  # type: ignore[arg-type]
        if kind == "date":
            return self._date(body, (fmt or options.date_order.value).lower())
        if kind in ("time", "currency", "money", "measure", "unit"):
            said = self.rewrites(body, options)
            if len(said) == 1 and said[0].start == 0 and said[0].end == len(body):
                return said[0].say.strip()
            return None
        if kind in ("expletive", "bleep"):
            return "beep"
        return None

    def _date(self, body: str, fmt: str) -> str | None:
        m = re.fullmatch(_DATE_FORMATS.get(fmt, _DATE_FORMATS["mdy"]), body)
        if not m:
            return None
        a, b, c = (int(g) for g in m.groups())
        y, mo, d = (a, b, c) if fmt == "ymd" else (c, b, a) if fmt == "dmy" else (c, a, b)
        if not (1 <= mo <= 12 and 1 <= d <= 31):
            return None
        return rules._date(y + (2000 if y < 100 else 0), mo, d)

    def sticky(self, word: str) -> bool:
        core = word.strip(_STRIP).lower()
        if _DOTTED.fullmatch(word.strip(_STRIP[1:])):
            return True  # "U.S." "a.m.": whether the period ends a sentence is in the next word
        if word.strip(_STRIP) in STICKY_CASED:
            return True
        return core in STICKY_WORDS or core.rstrip(".") in STICKY_WORDS


__all__ = ["EnglishNormalizer"]
