"""Per-language normalizers: a registry, so a language plugs in; text in others passes unchanged.

A normalizer turns what a reader would expand (numbers, dates, money, URLs, abbreviations) into
words. It reports rewrites, not a new string, so the front end can map every spoken word back to
the characters the client typed.
"""

from __future__ import annotations

from collections.abc import Callable

from dsp.textfront.normalizer import Normalizer, Rewrite

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
