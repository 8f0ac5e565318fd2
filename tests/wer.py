"""Word error rate between a reference text and a recognizer's hypothesis, after a normalizer
that makes spoken and written forms of the same words compare equal.

`normalize` applies, in order:
1. Unicode NFKC, lowercase; curly apostrophes become straight ones.
2. Thousands separators go ("1,000" -> "1000").
3. Money: "$12" -> "12 dollars", "$12.50" -> "12 dollars and 50 cents" ("$1" -> "1 dollar");
   "%" -> " percent", "&" -> " and ".
4. Numbers are spelled with num2words, the same on both sides, so "12" and "twelve" match:
   ordinals ("21st" -> "twenty first"), decimals digit by digit after "point"
   ("3.14" -> "three point one four"), integers as cardinals with num2words' "and" and commas
   dropped ("105" -> "one hundred five"). A time "3:30" becomes "three thirty" (the colon is
   punctuation). Not handled: years read as years ("1999" is "one thousand nine hundred ninety
   nine" while a speaker says "nineteen ninety nine"), so references should avoid them.
5. Apostrophes are removed inside words ("don't" -> "dont"); hyphens and every other
   non-alphanumeric character become spaces; whitespace collapses.

`wer` is the word-level Levenshtein distance (substitutions, insertions and deletions each cost
1) divided by the number of reference words; it can exceed 1.0 when the hypothesis adds words.
"""

from __future__ import annotations

import re
import unicodedata

from num2words import num2words

__all__ = ["normalize", "wer", "word_edits"]

_MONEY = re.compile(r"\$\s?(\d+)(?:\.(\d{2}))?\b")
_THOUSANDS = re.compile(r"\b\d{1,3}(?:,\d{3})+\b")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b")
_DECIMAL = re.compile(r"\b(\d+)\.(\d+)\b")
_INTEGER = re.compile(r"\d+")
_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _spell(n: int, to: str = "cardinal") -> str:
    words = num2words(n, to=to).replace(",", " ").replace("-", " ")
    return " ".join(w for w in words.split() if w != "and")


def _money(m: re.Match[str]) -> str:
    dollars, cents = m.group(1), m.group(2)
    text = f"{dollars} {'dollar' if dollars == '1' else 'dollars'}"
    if cents and int(cents):
        text += f" and {int(cents)} {'cent' if int(cents) == 1 else 'cents'}"
    return text


def _decimal(m: re.Match[str]) -> str:
    return f"{_spell(int(m.group(1)))} point {' '.join(_DIGIT_WORDS[int(d)] for d in m.group(2))}"


def normalize(text: str) -> str:
    """Lowercase words, numbers spelled out, punctuation gone, one space between words."""
    t = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'").replace("\u2018", "'")
    t = _THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), t)
    t = _MONEY.sub(_money, t)
    t = t.replace("%", " percent ").replace("&", " and ")
    t = _ORDINAL.sub(lambda m: f" {_spell(int(m.group(1)), 'ordinal')} ", t)
    t = _DECIMAL.sub(lambda m: f" {_decimal(m)} ", t)
    t = _INTEGER.sub(lambda m: f" {_spell(int(m.group(0)))} ", t)
    t = t.replace("'", "")
    t = re.sub(r"[^\w\s]|_", " ", t)
    return " ".join(t.split())


def word_edits(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance over words."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1,  # reference word deleted
                               current[j - 1] + 1,  # hypothesis word inserted
                               previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1]


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of `hypothesis` against `reference`, both normalized. An empty reference
    gives 0.0 for an empty hypothesis and 1.0 for any other."""
    ref, hyp = normalize(reference).split(), normalize(hypothesis).split()
    if not ref:
        return 0.0 if not hyp else 1.0
    return word_edits(ref, hyp) / len(ref)
