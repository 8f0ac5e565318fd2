"""English number words: cardinals, ordinals, years, decimals and digit strings (American style)."""

from __future__ import annotations

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ("", "thousand", "million", "billion", "trillion", "quadrillion")
_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                  "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
MAX_WORDS = 10**18  # past the scales above a number is read digit by digit


def _below_1000(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    words = [f"{_ONES[hundreds]} hundred"] if hundreds else []
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens] + (f"-{_ONES[ones]}" if ones else ""))
    elif rest or not hundreds:
        words.append(_ONES[rest])
    return " ".join(words)


def cardinal(n: int) -> str:
    """1234 -> "one thousand two hundred thirty-four" (no "and", no commas: no false pauses)."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n >= MAX_WORDS:
        return digits(str(n))
    if n < 1000:
        return _below_1000(n)
    groups: list[str] = []
    scale = 0
    while n:
        n, group = divmod(n, 1000)
        if group:
            groups.append(_below_1000(group) + (f" {_SCALES[scale]}" if scale else ""))
        scale += 1
    return " ".join(reversed(groups))


def ordinal(n: int) -> str:
    """22 -> "twenty-second"."""
    words = cardinal(n)
    head, sep, last = max(words.rpartition(" "), words.rpartition("-"), key=lambda t: len(t[0]))
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def year(n: int) -> str:
    """1999 -> "nineteen ninety-nine", 2005 -> "two thousand five", 2026 -> "twenty twenty-six"."""
    if not 1000 <= n <= 9999 or 2000 <= n <= 2009 or n % 1000 == 0:
        return cardinal(n)
    hi, lo = divmod(n, 100)
    if lo == 0:
        return f"{cardinal(hi)} hundred"
    return f"{cardinal(hi)} {'oh ' + _ONES[lo] if lo < 10 else cardinal(lo)}"


def digits(s: str) -> str:
    """"4567" -> "four five six seven"; characters other than digits are skipped."""
    return " ".join(_ONES[ord(c) - 48] for c in s if "0" <= c <= "9")


def decimal(s: str) -> str:
    """"3.14" -> "three point one four"; "1,234.5" -> "one thousand two hundred thirty-four point five"."""
    whole, _, frac = s.replace(",", "").partition(".")
    head = number(whole) if whole else ""
    if not frac:
        return head
    return f"{head} point {digits(frac)}".strip()


def number(s: str) -> str:
    """An integer string as a person reads it: leading zeros and long IDs digit by digit."""
    s = s.replace(",", "")
    if len(s) > 1 and s[0] == "0" or len(s) > 15:
        return digits(s)
    return cardinal(int(s))


_FRACTION_NAMES = {2: ("half", "halves"), 4: ("quarter", "quarters")}


def fraction(num: int, den: int) -> str:
    """3/4 -> "three quarters"; 5/16 -> "five sixteenths"; a zero or huge denominator -> "over"."""
    if den == 0 or den > 100:
        return f"{cardinal(num)} over {cardinal(den)}"
    if den == 1:
        return cardinal(num)
    one, many = _FRACTION_NAMES.get(den, (ordinal(den), ordinal(den) + "s"))
    if num == 1:
        return f"one {one}"
    return f"{cardinal(num)} {many}"


__all__ = ["cardinal", "decimal", "digits", "fraction", "number", "ordinal", "year"]
