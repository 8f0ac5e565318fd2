"""A stream's text on its way to the engine: the client's deltas through the text front end
(markup, emoji, SSML, normalization, the lexicon: dsp/textfront) into the chunker, with what
each segment's words came from, where silences go and which words have phonemes.

Segments are addressed by non-whitespace spoken characters (server/core/spoken.py), which the
chunker never drops or reorders; a segment's words therefore map to the pieces, and through
them to the client's text, whatever the chunker cut.
"""

from __future__ import annotations

from dataclasses import dataclass

from dsp.chunker import Chunker
from dsp.text import has_speech
from dsp.textfront import FrontOptions, Pause, Phonemes, Piece, TextFront
from server.core.spoken import SourceMarks, SpokenMap


@dataclass(frozen=True)
class Segment:
    """Text for one engine request, and where it sits in the stream's spoken text."""

    text: str  # spoken words, one space apart (phonemes not substituted)
    first: int  # non-whitespace index of its first character in the stream's spoken text
    pause_ms: int = 0  # silence to put after its audio

    @property
    def speakable(self) -> bool:
        return has_speech(self.text)


@dataclass(frozen=True)
class EngineText:
    """A segment as one engine gets it: `text`, and for each of its whitespace words the
    non-whitespace range [first, last) of the stream's spoken text it speaks."""

    text: str
    words: tuple[tuple[int, int], ...]


class TextInput:
    """Push the client's deltas in; pop segments sized by the rate controller."""

    def __init__(self, options: FrontOptions) -> None:
        self._front = TextFront(options)
        self._chunker = Chunker()
        self.spoken = SpokenMap()
        self.marks = SourceMarks(self.spoken)
        self._pauses: list[tuple[int, int]] = []  # (non-whitespace index, ms), in order
        self._phonemes: dict[int, tuple[str, int]] = {}  # first index -> (IPA, characters)
        self._next_first = 0
        self.has_speech = False

    # -- in

    def push(self, delta: str) -> None:
        self.marks.source += delta
        self._take(self._front.push(delta))

    def flush(self) -> None:
        self._take(self._front.flush())
        self._chunker.flush()

    def end(self) -> None:
        self._take(self._front.end())
        self._chunker.end_input()

    def _take(self, pieces: list[Piece]) -> None:
        for p in pieces:
            if isinstance(p, Pause):
                if p.ms > 0 and self.spoken.chars:  # a pause before any words is nothing
                    self._pauses.append((self.spoken.chars, p.ms))
                    self._chunker.flush()  # the segment before it ends where it stands
                continue
            spoken = p.spoken
            if not spoken:
                continue  # a Rate hint: speed is the stream's (not applied mid-stream)
            if isinstance(p, Phonemes) and p.ipa:
                count = sum(not ch.isspace() for ch in spoken)
                self._phonemes[self.spoken.chars] = (p.ipa, count)
            self.spoken.add([p])
            self._chunker.push_text(spoken)
            self.has_speech = self.has_speech or has_speech(spoken)

    # -- out

    @property
    def done(self) -> bool:
        return self._chunker.done

    def pop(self, max_chars: int) -> Segment | None:
        text = self._chunker.pop(max_chars)
        if text is None:
            return None
        first = self._next_first
        self._next_first = first + sum(not ch.isspace() for ch in text)
        pause = 0
        while self._pauses and self._pauses[0][0] <= self._next_first:
            pause += self._pauses.pop(0)[1]
        return Segment(text, first, pause)

    def for_engine(self, seg: Segment, text: str, *, phonemes: bool) -> EngineText:
        """`text` (the segment, or what is left of it after a failure part-way) as an engine
        gets it: with `[[IPA]]` for words that have phonemes when the engine takes them."""
        offset = seg.first + _nws(seg.text) - _nws(text)  # `text` is a tail of the segment
        words: list[tuple[int, int]] = []
        out: list[str] = []
        at = offset
        raw = text.split()
        i = 0
        while i < len(raw):
            n = _nws(raw[i])
            entry = self._phonemes.get(at) if phonemes else None
            if entry is not None:
                ipa, count = entry
                j, covered = i, 0
                while j < len(raw) and covered < count:
                    covered += _nws(raw[j])
                    j += 1
                extra = covered - count  # punctuation glued to the last word ("Morpheus.")
                if covered >= count and extra < _nws(raw[j - 1]):
                    block = "[[" + ipa.strip() + "]]" + (raw[j - 1][-extra:] if extra else "")
                    words.extend((at, at + covered) for _ in block.split())
                    out.append(block)
                    at += covered
                    i = j
                    continue
            words.append((at, at + n))
            out.append(raw[i])
            at += n
            i += 1
        return EngineText(" ".join(out), tuple(words))


def _nws(text: str) -> int:
    return sum(not ch.isspace() for ch in text)


__all__ = ["EngineText", "Segment", "TextInput"]
