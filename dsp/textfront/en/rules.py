"""How an English reader says each token the tokenizing expression finds (one function a kind)."""

from __future__ import annotations

import re
from collections.abc import Callable

from dsp.textfront.en.numbers import cardinal, decimal, digits, fraction, number, ordinal, year
from dsp.textfront.en.tables import (
    ABBREVIATIONS,
    ACRONYM_WORDS,
    CURRENCIES,
    GLUED_UNITS,
    MAGNITUDES,
    MONTH_BY_PREFIX,
    MONTHS,
    SHOUTED_WORDS,
    SPACED_UNITS,
    SPELLED_WORDS,
    TITLES,
)

Rule = Callable[[re.Match[str], str, str], "str | None"]  # (match, whole text, date order)
_VOWELS = frozenset("AEIOU")
_WORD = re.compile(r"[A-Za-z][\w'’-]{0,40}")


def _int_words(s: str) -> str:
    """A bare integer: a year-like 1100..2099 as a year, leading zeros and IDs digit by digit."""
    n = int(s) if s.isdigit() and len(s) <= 15 else -1  # "1,234" is never a year
    s = s.replace(",", "")
    if 1100 <= n <= 2099 and len(s) == 4 and n % 100 != 0 or n in (1900, 2000):
        return year(n)
    return number(s)


def _value(s: str) -> str:
    return decimal(s) if "." in s else number(s)


def _plural(word: str) -> str:
    return word[:-1] + "ies" if word.endswith("y") else word + "s"


def _is_one(s: str) -> bool:
    return s.replace(",", "") == "1"


def _next_word(text: str, end: int) -> str:
    m = _WORD.match(text, end + (len(text[end:end + 4]) - len(text[end:end + 4].lstrip())))
    return m.group() if m else ""


def _prev_word(text: str, start: int) -> tuple[str, str]:
    """The word before `start` and the character before that word ("" at the start)."""
    head = text[max(0, start - 60):start].rstrip()
    m = re.search(r"[\w'’-]{1,40}$", head)
    if not m:
        return "", ""
    return m.group(), head[:m.start()].rstrip()[-1:]


def _sentence_end(text: str, end: int) -> str:
    """The period an abbreviation swallowed, given back when it also ended the sentence."""
    rest = text[end:end + 8].lstrip()
    return "." if not rest or rest[0].isupper() or rest[0] == "\n" else ""


def _spell(letters: str) -> str:
    return " ".join(ch.upper() if ch.isalpha() else digits(ch) or ch for ch in letters if ch.isalnum())


def _name_words(label: str) -> str:
    """A URL or e-mail piece: words kept, digits read one by one, separators named."""
    out = re.sub(r"\d+", lambda m: f" {digits(m.group())} ", re.sub(r"[^\w.+-]", " ", label))
    for ch, name in ((".", " dot "), ("-", " dash "), ("_", " underscore "), ("+", " plus ")):
        out = out.replace(ch, name)
    return " ".join(out.split())


def url(m: re.Match[str], text: str, order: str) -> str:
    u = re.sub(r"[A-Za-z][A-Za-z0-9+.-]{0,15}://", "", m.group())
    u = re.sub(r"^www\.", "", u, flags=re.IGNORECASE)
    host, _, path = u.partition("/")
    host = host.split("@")[-1].split(":")[0]
    out = _name_words(host)
    segs = [s for s in re.split(r"[?#]", path, maxsplit=1)[0].split("/") if s]
    if segs and len(segs) <= 3 and all(len(s) <= 24 for s in segs):
        out += "".join(" slash " + _name_words(s) for s in segs)
    return out


def email(m: re.Match[str], text: str, order: str) -> str:
    local, _, domain = m.group().partition("@")
    return f"{_name_words(local)} at {_name_words(domain)}"


def phone(m: re.Match[str], text: str, order: str) -> str:
    s = m.group()
    groups = [digits(g) for g in re.findall(r"\d+", s)]
    return ("plus " if s.startswith("+") else "") + ", ".join(groups)


def _date(y: int | None, mo: int, d: int) -> str:
    words = f"{MONTHS[mo - 1]} {ordinal(d)}"
    return f"{words}, {year(y)}" if y is not None else words


def iso(m: re.Match[str], text: str, order: str) -> str:
    return _date(int(m["iy"]), int(m["im"]), int(m["id"]))


def numeric_date(m: re.Match[str], text: str, order: str) -> str | None:
    a, b, c = int(m["na"]), int(m["nb"]), m["nc"]
    mo, d = (b, a) if order == "dmy" else (a, b)
    if mo > 12 and d <= 12:
        mo, d = d, mo
    if mo > 12:
        return None
    y = int(c) + (2000 if len(c) == 2 else 0)
    return _date(y, mo, d)


def month_day(m: re.Match[str], text: str, order: str) -> str:
    mo = MONTH_BY_PREFIX[m["mon"][:3].lower()]
    return _date(int(m["myear"]) if m["myear"] else None, mo, int(m["mday"]))


def day_month(m: re.Match[str], text: str, order: str) -> str:
    mo = MONTH_BY_PREFIX[m["dmon"][:3].lower()]
    words = f"the {ordinal(int(m['dday']))} of {MONTHS[mo - 1]}"
    return f"{words}, {year(int(m['dyear']))}" if m["dyear"] else words


def _clock(h: int, mins: int, *, twelve: bool) -> str:
    hw = cardinal(h)
    if mins == 0:
        return hw if twelve else (f"{hw} o'clock" if 1 <= h <= 12 else f"{hw} hundred")
    return f"{hw} {'oh ' + cardinal(mins) if mins < 10 else cardinal(mins)}"


def time12(m: re.Match[str], text: str, order: str) -> str:
    ap = "A M" if m["ap"].lower() == "a" else "P M"
    words = f"{_clock(int(m['th']), int(m['tm'] or 0), twelve=True)} {ap}"
    return words + (_sentence_end(text, m.end()) if m.group().endswith(".") else "")


def time24(m: re.Match[str], text: str, order: str) -> str:
    words = _clock(int(m["hh"]), int(m["mm"]), twelve=False)
    if m["ss"] and int(m["ss"]):
        words += f" and {cardinal(int(m['ss']))} seconds"
    return words


def _money(neg: str | None, cur: str, amt: str, cents: str | None, mag: str | None) -> str:
    one, many, sub_one, sub_many = CURRENCIES[cur.strip()]
    sign = "minus " if neg else ""
    if mag:
        value = amt + ("." + cents if cents else "")
        return f"{sign}{_value(value)} {MAGNITUDES[mag]} {many}"
    if cents is not None and (len(cents) > 2 or not sub_one):
        return f"{sign}{decimal(amt + '.' + cents)} {many}"
    whole = f"{number(amt)} {one if _is_one(amt) else many}"
    c = int(cents.ljust(2, "0")) if cents else 0
    if not c:
        return sign + whole
    part = f"{cardinal(c)} {sub_one if c == 1 else sub_many}"
    return sign + (part if amt.strip("0,") == "" else f"{whole} and {part}")


_PER = {"mo": "month", "yr": "year", "hr": "hour", "wk": "week"}


def money(m: re.Match[str], text: str, order: str) -> str:
    words = _money(m["neg"], m["cur"], m["amt"], m["cents"], m["magw"] or m["magl"])
    return words + (f" per {_PER.get(m['per'], m['per'])}" if m["per"] else "")


def money_after(m: re.Match[str], text: str, order: str) -> str:
    return _money(None, m["cur2"], m["amt2"], m["cents2"], None)


def percent(m: re.Match[str], text: str, order: str) -> str:
    sign = "minus " if m["pneg"] else ""
    if m["pb"]:
        return f"{sign}{_value(m['pa'])} to {_value(m['pb'])} percent"
    return f"{sign}{_value(m['pa'])} percent"


def decade(m: re.Match[str], text: str, order: str) -> str:
    n = int(m["dec"])
    words = _int_words(m["dec"]) if n >= 1000 else cardinal(n)
    return _plural(words)


def _unit(unit: str | None, glued: str | None, value: str) -> str:
    one, many = SPACED_UNITS[unit] if unit else GLUED_UNITS[glued or ""]
    return one if _is_one(value) else many


def range_(m: re.Match[str], text: str, order: str) -> str:
    a, b = m["ra"], m["rb"]
    words = f"{_value(a) if '.' in a else _int_words(a)} to {_value(b) if '.' in b else _int_words(b)}"
    if m["ru"] or m["rug"]:
        words += " " + _unit(m["ru"], m["rug"], b)
    return words


def ordinal_(m: re.Match[str], text: str, order: str) -> str:
    return ordinal(int(m["on"]))


_SPECIAL_FRACTIONS = {("24", "7"): "twenty-four seven", ("50", "50"): "fifty-fifty"}
_A_FRACTION = {2: "a half", 4: "a quarter", 3: "a third"}


def fraction_(m: re.Match[str], text: str, order: str) -> str:
    if not m["fw"] and (m["fn"], m["fd"]) in _SPECIAL_FRACTIONS:
        return _SPECIAL_FRACTIONS[m["fn"], m["fd"]]
    n, d = int(m["fn"]), int(m["fd"])
    words = fraction(n, d) if d <= 16 else f"{cardinal(n)} over {cardinal(d)}"
    if m["fw"]:
        part = _A_FRACTION.get(d, words) if n == 1 else words
        return f"{cardinal(int(m['fw']))} and {part}"
    return words


_UNICODE_FRACTIONS = {"½": (1, 2), "⅓": (1, 3), "⅔": (2, 3), "¼": (1, 4), "¾": (3, 4),
                      "⅛": (1, 8), "⅜": (3, 8), "⅝": (5, 8), "⅞": (7, 8)}


def ufraction(m: re.Match[str], text: str, order: str) -> str:
    n, d = _UNICODE_FRACTIONS[m["uf"]]
    words = fraction(n, d)
    if m["uw"]:
        return f"{cardinal(int(m['uw']))} and {_A_FRACTION.get(d, words) if n == 1 else words}"
    return words


def dims(m: re.Match[str], text: str, order: str) -> str:
    return f"{_int_words(m['da'])} by {_int_words(m['db'])}"


def mult(m: re.Match[str], text: str, order: str) -> str:
    return f"{_value(m['xn'])} times"


def measure(m: re.Match[str], text: str, order: str) -> str:
    sign = "minus " if m["mneg"] else ""
    return f"{sign}{_value(m['mn'])} {_unit(m['mu'], m['mug'], m['mn'])}"


def version(m: re.Match[str], text: str, order: str) -> str:
    parts = m["vn"].split(".")
    if len(parts) == 4 and all(int(p) <= 255 for p in parts):
        return " dot ".join(cardinal(int(p)) for p in parts)
    return ("version " if m.group().startswith("v") else "") + " point ".join(number(p) for p in parts)


def num(m: re.Match[str], text: str, order: str) -> str:
    sign = "minus " if m.group().startswith("-") else ""
    if m["nf"] is not None:
        return sign + decimal(m["nv"] + "." + m["nf"])
    return sign + _int_words(m["nv"])


def hash_number(m: re.Match[str], text: str, order: str) -> str:
    return f"number {cardinal(int(m['hn']))}"


def sharp(m: re.Match[str], text: str, order: str) -> str:
    return f"{m['sl']} sharp"


def _split_camel(s: str) -> str:
    return " ".join(re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|_", " ", s).split())


def hashtag(m: re.Match[str], text: str, order: str) -> str:
    return f"hashtag {_split_camel(m['ht'])}"


def mention(m: re.Match[str], text: str, order: str) -> str:
    return f"at {_split_camel(m['an'])}"


def abbreviation(m: re.Match[str], text: str, order: str) -> str | None:
    ab = m["ab"]
    nxt = _next_word(text, m.end())
    prev, before = _prev_word(text, m.start())
    prev_is_name = bool(prev) and prev[0].isupper() and before not in ("", ".", "!", "?", "\n")
    if ab == "No":
        return "number" if re.match(r"\s{0,3}\d", text[m.end():m.end() + 4]) else None
    if ab == "St":
        if nxt[:1].isupper() and not prev_is_name and not prev[:1].isdigit():
            return "Saint"
        return "Street" + _sentence_end(text, m.end())
    if ab == "Dr" and not nxt[:1].isupper() and prev_is_name:
        return "Drive" + _sentence_end(text, m.end())
    if ab in TITLES:
        return TITLES[ab]
    return ABBREVIATIONS[ab.lower() if ab[0] in "EI" else ab] + _sentence_end(text, m.end())


def month_abbreviation(m: re.Match[str], text: str, order: str) -> str:
    return MONTHS[MONTH_BY_PREFIX[m["mab"][:3].lower()] - 1] + _sentence_end(text, m.end())


def dotted(m: re.Match[str], text: str, order: str) -> str:
    return _spell(m.group()) + _sentence_end(text, m.end())


def caps(m: re.Match[str], text: str, order: str) -> str | None:
    w = m["cw"]
    if w in ACRONYM_WORDS or w in SHOUTED_WORDS:
        return None
    if len(w) >= 4 and _VOWELS.intersection(w) and w not in SPELLED_WORDS:
        return None  # a word in capitals (shouting, or an acronym said as a word)
    suffix = "'s" if m["cpl"] else ""
    return _spell(w) + suffix


_SYMBOLS = {"&": "and", "+": "plus", "=": "equals", "±": "plus or minus",
            "≥": "greater than or equal to", "≤": "less than or equal to", "≠": "not equal to",
            "÷": "divided by", "×": "times", "^": "to the power of", "%": "percent", "@": "at",
            "<": "less than", ">": "greater than"}


def symbol(m: re.Match[str], text: str, order: str) -> str:
    return _SYMBOLS[m.group()]


RULES: dict[str, Rule] = {
    "url": url, "scheme": lambda m, t, o: "", "email": email, "domain": url, "phone": phone,
    "intl": phone, "local": phone, "iso": iso, "nd": numeric_date, "md": month_day,
    "dm": day_month, "t12": time12, "t24": time24, "money": money, "money2": money_after,
    "pct": percent, "decade": decade, "range": range_, "ord": ordinal_, "frac": fraction_,
    "ufrac": ufraction, "dims": dims, "mult": mult, "meas": measure, "ver": version, "num": num,
    "hnum": hash_number, "sharp": sharp, "htag": hashtag, "at": mention,
    "abbr": abbreviation, "vs": lambda m, t, o: "versus", "mabbr": month_abbreviation,
    "dotted": dotted, "caps": caps, "arrow": lambda m, t, o: "to",
    "approx": lambda m, t, o: "about", "sym": symbol, "cmp": symbol,
    "with": lambda m, t, o: "with", "slash": lambda m, t, o: " ", "uscore": lambda m, t, o: " ",
    "junk": lambda m, t, o: "",
}

__all__ = ["RULES"]
