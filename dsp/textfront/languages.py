"""Per-language normalizers: a registry, so a language plugs in; text in others passes unchanged.

A normalizer turns what a reader would expand (numbers, dates, money, URLs, abbreviations) into
words. It reports rewrites, not a new string, so the front end can map every spoken word back to
the characters the client typed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from dsp.textfront.options import FrontOptions


@dataclass(frozen=True, slots=True)
class Rewrite:
    start: int  # in the text given to `rewrites`
    end: int
    say: str  # replaces text[start:end]


class Normalizer(Protocol):
    def rewrites(self, text: str, options: FrontOptions) -> list[Rewrite]:
        """Sorted, non-overlapping rewrites of `text` (one decided unit, a few hundred
        characters at most). Must not raise and must run in time linear in len(text)."""
        ...

    def say_as(self, interpret_as: str, text: str, fmt: str | None,
               options: FrontOptions) -> str | None:
        """SSML <say-as>: the words for `text` read as `interpret_as` (cardinal, ordinal,
        characters, digits, date, time, telephone, ...); None when it does not apply."""
        ...

    def sticky(self, word: str) -> bool:
        """Whether a whitespace-separated word may form one expression with its neighbours
        (a number, a month, a unit, "Dr."): the streaming front never cuts next to it."""
        ...


_registry: dict[str, Normalizer] = {}
_builtin: dict[str, Callable[[], Normalizer]] = {}


def _english() -> Normalizer:
    from dsp.textfront.en import EnglishNormalizer

    return EnglishNormalizer()


_builtin["en"] = _english


def register_language(code: str, normalizer: Normalizer) -> None:
    """Use `normalizer` for `code` (a primary language subtag such as "en" or "de")."""
    _registry[code.lower()] = normalizer


def normalizer_for(language: str | None) -> Normalizer | None:
    """The normalizer for a language tag ("en", "en-US", "en_GB"); None: no rules, unchanged."""
    code = (language or "en").replace("_", "-").split("-")[0].lower()
    if code not in _registry and code in _builtin:
        _registry[code] = _builtin[code]()
    return _registry.get(code)


__all__ = ["Normalizer", "Rewrite", "normalizer_for", "register_language"]
