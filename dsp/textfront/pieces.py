"""What the text front end hands on: pieces of speech, each tied to a span of the client's text.

Every piece carries the span [start, end) of the client's ORIGINAL text it came from, in
characters counted over everything pushed into the stream. Markup that a listener should not hear
produces no piece: its span is simply not covered.

    Piece                       start, end: the source span
    ├── Say(text, verbatim)     words for the engine; verbatim: text == source[start:end]
    ├── Pause(ms)               silence (SSML break, list item, table row, paragraph)
    ├── Tag(name)               an emotion tag the engine voices, spoken as "<name>"
    ├── Phonemes(text, ipa)     IPA for engines that take phonemes; `text` for the others
    └── Rate(speed)             a speaking-rate hint (SSML prosody) until the next Rate
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Piece:
    start: int  # source span in the client's text, characters
    end: int

    @property
    def spoken(self) -> str:
        """The characters this piece adds to the spoken text."""
        return ""


@dataclass(frozen=True, slots=True)
class Say(Piece):
    text: str = ""
    verbatim: bool = False  # text is the source unchanged: it maps back char for char

    @property
    def spoken(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Pause(Piece):
    ms: int = 0  # silence, milliseconds


@dataclass(frozen=True, slots=True)
class Tag(Piece):
    name: str = ""  # one of dsp.chunker.EMOTION_TAGS

    @property
    def spoken(self) -> str:
        return f"<{self.name}>"


@dataclass(frozen=True, slots=True)
class Phonemes(Piece):
    text: str = ""  # what engines without phoneme input say
    ipa: str = ""  # International Phonetic Alphabet, no slashes

    @property
    def spoken(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Rate(Piece):
    speed: float = 1.0  # relative speaking rate, 1.0 = the request's own


def spoken_text(pieces: Iterable[Piece]) -> str:
    """The text the engine is given: the pieces' spoken characters, in order."""
    return "".join(p.spoken for p in pieces)


def merge_verbatim(pieces: Iterable[Piece]) -> list[Piece]:
    """Join neighbouring verbatim Say pieces whose sources touch: the same speech, fewer pieces."""
    out: list[Piece] = []
    for p in pieces:
        last = out[-1] if out else None
        if (isinstance(p, Say) and p.verbatim and isinstance(last, Say) and last.verbatim
                and last.end == p.start):
            out[-1] = Say(last.start, p.end, last.text + p.text, True)
        else:
            out.append(p)
    return out


__all__ = ["Pause", "Phonemes", "Piece", "Rate", "Say", "Tag", "merge_verbatim", "spoken_text"]
