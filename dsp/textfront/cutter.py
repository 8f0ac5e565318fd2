"""Where the streaming front may cut: the bounded lookahead that makes deltas not matter.

Text is decided in units. A unit ends at a newline, or where a word starts after a space, if
  - no construct is open there (a tag `<...>`, an SSML element awaiting `</phoneme>`, `</sub>`
    or `</say-as>`, a link `[...](...)`, inline code, `~~struck~~`), and
  - neither the word before nor the word after is "sticky": one with a digit, one made of
    symbols only (`-`, `|`, `**`, `$`), or one the language or the lexicon marks ("Dr.",
    "St.", "etc.", the first word of a lexicon phrase), because such words form one
    expression with their neighbours ("$1.5 million", "3:30 PM", "+1 (555) 123-4567").
Deciding a cut needs the word after it complete (so the front holds back at most the next word,
WORD_CHARS at most), except after a plain word that ends a sentence or clause ("Sure! ",
"plan, "): no rule reads across that, so the text up to it goes at once. A unit never grows past HOLD_CHARS: then it is cut at the last word start
before HOLD_CHARS (before the construct that kept it open, if one did), or at HOLD_CHARS inside
an over-long word. So the text held back is at most HOLD_CHARS + WORD_CHARS characters, and
whether or where a cut falls depends only on the text, never on how it was split into deltas.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

HOLD_CHARS = 240  # the longest unit: an open emphasis, link or tag is given up after this
WORD_CHARS = 64  # the longest word looked ahead at; a longer one counts as plain

_CANDIDATE = re.compile(r"\n|(?<=[ \t\r\f\v])(?=[^\s])")
_WS = re.compile(r"\s")
_ELEMENT = re.compile(r"<(phoneme|sub|say-as)(?=[\s>/])")
_CLAUSE_END = re.compile(r"[.!?…,;:][\"'”’)\]*_]{0,4}$")
_GLUE = frozenset("\u200d\ufe0f\ufe0e\u20e3")


def _has_digit(word: str) -> bool:
    return any(c.isdigit() for c in word[:WORD_CHARS])


def _generic_sticky(word: str) -> bool:
    return _has_digit(word) or not any(c.isalnum() for c in word)


def open_at(s: str) -> int:
    """Where the earliest construct still open at the end of `s` starts; -1 when none is."""
    opened: list[int] = []
    lt = s.rfind("<")
    if lt >= 0 and lt + 1 < len(s) and (s[lt + 1].isalpha() or s[lt + 1] in "/!") \
            and s.find(">", lt) < 0:
        opened.append(lt)
    for m in _ELEMENT.finditer(s):
        if s.find(f"</{m[1]}", m.end()) < 0:
            opened.append(m.start())
            break
    lb = s.rfind("[")
    if lb >= 0 and s.find("]", lb) < 0:
        opened.append(lb)
    paren = s.rfind("](")
    if paren >= 0 and s.find(")", paren) < 0:
        opened.append(paren)
    if s.count("`") % 2:
        opened.append(s.find("`"))
    if s.count("~~") % 2:
        opened.append(s.find("~~"))
    return min(opened) if opened else -1


class Cutter:
    """Finds the end of the next decided unit at the head of the buffer."""

    def __init__(self, sticky: Callable[[str], bool]) -> None:
        self._sticky = sticky  # the language's and the lexicon's sticky words
        # Candidates before this were ruled out for good by the text before them: text only
        # grows at the end between calls, so a push never re-examines them (reset() after a cut).
        self._resume = 0

    def reset(self) -> None:
        """The unit found was taken off the buffer's head."""
        self._resume = 0

    def _is_sticky(self, word: str) -> bool:
        return _generic_sticky(word) or self._sticky(word)

    def cut(self, buf: str, *, final: bool, in_code: bool) -> int | None:
        """The end of the first unit of `buf`, or None when more text is needed to decide.
        final: the buffer's end is a boundary (end of input, or a flush)."""
        if not buf:
            return None
        for m in _CANDIDATE.finditer(buf, self._resume, HOLD_CHARS + 1):
            p = m.end()
            if m.group() == "\n":
                return p
            if in_code or p > HOLD_CHARS or p == 0:
                continue
            before = buf[:p].rstrip()
            w1 = before[before.rfind(" ") + 1:] if before else ""
            w1 = w1[w1.rfind("\t") + 1:]
            if not w1 or self._is_sticky(w1) or open_at(before) >= 0:
                continue
            if _CLAUSE_END.search(w1):
                return p  # "Sure! " or "plan, ": nothing reads across it, no need to wait
            ws = _WS.search(buf, p, p + WORD_CHARS + 1)
            if ws is None and not final and len(buf) <= p + WORD_CHARS:
                if _has_digit(buf[p:]):
                    continue  # sticky however it ends
                self._resume = m.start()
                return None  # the next word is not complete yet
            w2 = buf[p:ws.start()] if ws is not None else buf[p:p + WORD_CHARS + 1]
            if self._is_sticky(w2):
                continue
            return p
        if len(buf) > HOLD_CHARS:
            return self._hard_cut(buf)
        if final:
            return len(buf)
        if not in_code and buf[-1] in " \t" and self._ends_clause(buf):
            # "dusk. " with the next word not here yet: a sentence or clause end needs no
            # lookahead, so a client that stops after it is not kept waiting. (The cut falls
            # between whitespace characters at worst: the spoken text is the same.)
            return len(buf)
        self._resume = max(self._resume, len(buf) - 1)  # a candidate needs the char before it
        return None

    def _ends_clause(self, buf: str) -> bool:
        before = buf.rstrip()
        w1 = before[before.rfind(" ") + 1:]
        w1 = w1[w1.rfind("\t") + 1:]
        return bool(w1) and not self._is_sticky(w1) and open_at(before) < 0 \
            and bool(_CLAUSE_END.search(w1))

    def _hard_cut(self, buf: str) -> int:
        head = buf[:HOLD_CHARS]
        limit = HOLD_CHARS
        if (opened := open_at(head)) > 0:
            limit = opened
        starts = [m.end() for m in _CANDIDATE.finditer(buf, 1, limit + 1) if 0 < m.end() <= limit]
        if not starts and limit < HOLD_CHARS:
            starts = [m.end() for m in _CANDIDATE.finditer(buf, 1, HOLD_CHARS + 1) if m.end() > 0]
        if starts:
            return starts[-1]
        cut = HOLD_CHARS
        while cut > 1 and (buf[cut] in _GLUE or unicodedata.combining(buf[cut])
                           or 0x1F3FB <= ord(buf[cut]) <= 0x1F3FF):
            cut -= 1  # never split a character from its marks, joiners or modifiers
        return cut


__all__ = ["HOLD_CHARS", "WORD_CHARS", "Cutter", "open_at"]
