"""What a language's normalizer is: rewrites of the text it reads, never a new string, so every
spoken word maps back to the characters the client typed."""

from __future__ import annotations

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


__all__ = ["Normalizer", "Rewrite"]
