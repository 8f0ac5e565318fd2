"""Pronunciation lexicon: words, phrases or patterns -> what to say, or phonemes (IPA).

File format (LEXICON_FILE), UTF-8, one entry a line, tab-separated, `#` starts a comment line:

    Nginx<TAB>engine x              an alias: say "engine x" for "Nginx"
    Kokoro<TAB>/kəˈkɔɹoʊ/           phonemes (IPA between slashes) for engines that take them;
                                    the others say the word as written
    Kokoro<TAB>/kəˈkɔɹoʊ/<TAB>koh-koh-roh    phonemes plus the alias the others say
    re:\\bv(\\d+)\\.(\\d+)\\b<TAB>version \\1 point \\2    a regular expression (re: prefix)

A key with an upper-case letter matches case-sensitively ("US" is not "us"); an all-lower-case
key matches any case. Words and phrases match whole words only. Patterns are the operator's
own (trusted, like any config): they run on at most one decided unit of text (a few hundred
characters) at a time. Later entries are not consulted where an earlier one matched;
`merge` puts a request's entries before the file's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsp.textfront.arpabet import arpabet_to_ipa


class LexiconError(ValueError):
    """A lexicon file or a pronunciation rule that cannot be used; names the line or rule."""


@dataclass(frozen=True, slots=True)
class LexiconEntry:
    match: str  # the word or phrase, or a regular expression when `pattern`
    alias: str | None = None  # what to say instead
    ipa: str | None = None  # phonemes, for engines that take them
    pattern: bool = False
    case_sensitive: bool = False
    word_boundaries: bool = True


@dataclass(frozen=True, slots=True)
class LexiconHit:
    start: int  # in the text searched
    end: int
    say: str  # the alias, or the matched text itself
    ipa: str | None


@dataclass(frozen=True)
class Lexicon:
    entries: tuple[LexiconEntry, ...] = ()
    _compiled: list[tuple[re.Pattern[str], LexiconEntry]] = field(
        default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for e in self.entries:
            if e.pattern:
                body = e.match
            else:
                body = re.escape(e.match).replace(r"\ ", r"\s+")
            if e.word_boundaries and not e.pattern:
                body = rf"(?<!\w){body}(?!\w)"
            try:
                rx = re.compile(body, 0 if e.case_sensitive else re.IGNORECASE)
            except re.error as err:
                raise LexiconError(f"bad pattern {e.match!r}: {err}") from err
            self._compiled.append((rx, e))

    def __bool__(self) -> bool:
        return bool(self.entries)

    def merge(self, first: Lexicon | Iterable[LexiconEntry]) -> Lexicon:
        """A lexicon whose entries `first` (a request's) are consulted before this one's."""
        head = first.entries if isinstance(first, Lexicon) else tuple(first)
        return Lexicon(head + self.entries)

    @property
    def first_words(self) -> frozenset[str]:
        """Lower-cased first words of multi-word phrases: the streaming front holds text after
        such a word until the next word shows whether the phrase goes on."""
        return frozenset(e.match.split()[0].lower() for e in self.entries
                         if not e.pattern and len(e.match.split()) > 1)

    def find(self, text: str) -> list[LexiconHit]:
        """Non-overlapping matches, leftmost first; at one position the earlier entry wins."""
        if not self.entries or not text:
            return []
        found: list[tuple[int, int, int, re.Match[str]]] = []
        for rank, (rx, _) in enumerate(self._compiled):
            for m in rx.finditer(text):
                if m.end() > m.start():
                    found.append((m.start(), rank, m.end(), m))
        found.sort(key=lambda t: (t[0], t[1]))
        hits: list[LexiconHit] = []
        pos = 0
        for start, rank, end, m in found:
            if start < pos:
                continue
            e = self._compiled[rank][1]
            say = m.group()
            if e.alias is not None:
                say = m.expand(e.alias) if e.pattern else e.alias
            hits.append(LexiconHit(start, end, say, e.ipa))
            pos = end
        return hits


def parse_lexicon(text: str, *, source: str = "lexicon") -> Lexicon:
    """Entries from the tab-separated format above."""
    entries: list[LexiconEntry] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) < 2 or not cols[0] or not cols[1].strip():
            raise LexiconError(f"{source}:{n}: expected 'word<TAB>alias' or 'word<TAB>/ipa/'")
        key, say = cols[0], cols[1].strip()
        alias = cols[2].strip() if len(cols) > 2 and cols[2].strip() else None
        ipa = None
        if len(say) > 2 and say[0] == say[-1] == "/":
            ipa = say[1:-1]
        else:
            alias = say
        pattern = key.startswith("re:")
        match = key[3:] if pattern else key.strip()
        try:
            entries.append(LexiconEntry(match, alias, ipa, pattern,
                                        case_sensitive=pattern or match != match.lower()))
            Lexicon((entries[-1],))  # compile now, so the error names the line
        except LexiconError as e:
            raise LexiconError(f"{source}:{n}: {e}") from None
    return Lexicon(tuple(entries))


def load_lexicon(path: str | Path) -> Lexicon:
    """Read a LEXICON_FILE; raises LexiconError (or OSError) naming the file."""
    p = Path(path)
    return parse_lexicon(p.read_text(encoding="utf-8"), source=str(p))


class LexiconFile:
    """A LEXICON_FILE re-read when it changes on disk (its mtime and size), like `.env`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[float, int] | None = None
        self._lexicon = Lexicon()

    def get(self) -> Lexicon:
        """The current lexicon; a file that became unreadable or invalid raises, the caller
        decides whether to keep serving the last good one (`last`)."""
        st = self.path.stat()
        stamp = (st.st_mtime, st.st_size)
        if stamp != self._stamp:
            self._lexicon = load_lexicon(self.path)
            self._stamp = stamp
        return self._lexicon

    @property
    def last(self) -> Lexicon:
        return self._lexicon


def from_elevenlabs_rules(rules: Iterable[Mapping[str, Any]]) -> Lexicon:
    """ElevenLabs pronunciation-dictionary rules (the add-from-rules body's `rules`) as entries:
    {type: "alias", string_to_replace, alias} and {type: "phoneme", string_to_replace,
    phoneme, alphabet: "ipa" | "cmu-arpabet"}, with optional case_sensitive and word_boundaries
    (both default true: ElevenLabs' lexicons are case-sensitive)."""
    entries: list[LexiconEntry] = []
    for i, r in enumerate(rules):
        kind, key = r.get("type"), r.get("string_to_replace")
        if not isinstance(key, str) or not key:
            raise LexiconError(f"rule {i}: string_to_replace must be a non-empty string")
        cs, wb = bool(r.get("case_sensitive", True)), bool(r.get("word_boundaries", True))
        if kind == "alias":
            alias = r.get("alias")
            if not isinstance(alias, str):
                raise LexiconError(f"rule {i}: an alias rule needs a string 'alias'")
            entries.append(LexiconEntry(key, alias=alias, case_sensitive=cs, word_boundaries=wb))
        elif kind == "phoneme":
            phoneme, alphabet = r.get("phoneme"), str(r.get("alphabet", "ipa")).lower()
            if not isinstance(phoneme, str) or not phoneme.strip():
                raise LexiconError(f"rule {i}: a phoneme rule needs a string 'phoneme'")
            if alphabet == "ipa":
                ipa: str | None = phoneme.strip().strip("/")
            elif alphabet in ("cmu-arpabet", "cmu", "arpabet"):
                ipa = arpabet_to_ipa(phoneme)
                if ipa is None:
                    raise LexiconError(f"rule {i}: unknown ARPAbet symbol in {phoneme!r}")
            else:
                raise LexiconError(f"rule {i}: alphabet must be 'ipa' or 'cmu-arpabet'")
            entries.append(LexiconEntry(key, ipa=ipa, case_sensitive=cs, word_boundaries=wb))
        else:
            raise LexiconError(f"rule {i}: type must be 'alias' or 'phoneme', got {kind!r}")
    return Lexicon(tuple(entries))


__all__ = ["Lexicon", "LexiconEntry", "LexiconError", "LexiconFile", "LexiconHit",
           "from_elevenlabs_rules", "load_lexicon", "parse_lexicon"]
