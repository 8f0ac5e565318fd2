"""Text segmentation for TTS: streamed text in, speakable segments out (small first)."""

from __future__ import annotations

import re

EMOTION_TAGS: tuple[str, ...] = (
    "laugh", "chuckle", "sigh", "cough", "sniffle", "groan", "yawn", "gasp",
)  # fmt: skip

ABBREVIATIONS = frozenset(
    "dr. mr. mrs. ms. st. prof. e.g. i.e. etc. vs. jr. sr. mt. fig. approx. dept. inc. ltd. "
    "co. corp. gen. gov. sen. rep. capt. lt. sgt. col. cf. al. "
    "jan. feb. mar. apr. jun. jul. aug. sep. sept. oct. nov. dec.".split()
)
_SENTENCE, _CLAUSE, _WORD = 2, 1, 0
_ENDS = ".!?…"
_CJK_ENDS = "。！？"
_CLAUSE_MARKS = ",;:—–，、；："
_CLOSERS = "\"'”’)]}»」』）"
_OPENERS = "\"'“‘([{«「『（"
_OPEN_TAG_AT_END = re.compile(r"<[A-Za-z_]*$")  # a tag still arriving
_TRAILING_TAG = re.compile(r"<[A-Za-z_]+>$")
_LEADING_NON_WORDS = re.compile(r"(?:\s|<[A-Za-z_]+>)*")
_WS_RUN = re.compile(r"\s+")
_INITIALS = re.compile(r"(?:[A-Za-z]\.)+")  # "J." "U.S." "e.g."
_CJK_CUT = re.compile(rf"[{_CJK_ENDS}][{re.escape(_CLOSERS)}]*(?=\S)|[，、；：](?=\S)")


def normalize_whitespace(text: str) -> str:
    """Collapse every whitespace run to one space and strip: the text split_text preserves."""
    return " ".join(text.split())


def _collapse(text: str) -> str:
    # keep a newline as "\n" (a clause boundary); any other run becomes one space
    return _WS_RUN.sub(lambda m: "\n" if "\n" in m.group() else " ", text)


def _word_span(text: str, final: bool) -> tuple[int, int]:
    """Index of the first and one past the last character that is not space or a tag."""
    first = _LEADING_NON_WORDS.match(text).end()  # type: ignore[union-attr]
    if first == len(text):
        return len(text), 0
    last = len(text)
    while True:  # peel trailing spaces and tags (and, while text arrives, a half tag)
        last = len(text[:last].rstrip())
        lo = max(0, last - 64)  # tags are short; keeps this O(1) on long buffers
        m = _TRAILING_TAG.search(text, lo, last) or (
            None if final else _OPEN_TAG_AT_END.search(text, lo, last)
        )
        if m is None:
            return first, last
        last = m.start()


def _rank_at_space(text: str, i: int, final: bool) -> int | None:
    """What kind of boundary the whitespace at text[i] is; None: undecided until more text."""
    k = i
    while k > 0 and text[k - 1] in _CLOSERS:
        k -= 1
    prev = text[k - 1] if k > 0 else ""
    if prev in _ENDS or prev in _CJK_ENDS:
        start = k
        while start > 0 and text[start - 1] in _ENDS + _CJK_ENDS:
            start -= 1
        run = text[start:k]
        if any(c in "!?" + _CJK_ENDS for c in run):
            return _SENTENCE
        nxt = text[i + 1 : i + 8].lstrip(_OPENERS)[:1]
        if run != "." and not nxt and not final:
            return None  # an ellipsis ends the sentence only if the next word is capitalized
        if nxt.islower():  # "... and then", "U.S. and": mid-sentence
            return _WORD
        if run == ".":
            token = text[text.rfind(" ", 0, start) + 1 : k].lstrip(_OPENERS)
            token = token[token.rfind("\n") + 1 :]
            if token.lower() in ABBREVIATIONS or _INITIALS.fullmatch(token):
                return _WORD
        return _SENTENCE
    if prev in _CLAUSE_MARKS or text[i] == "\n":
        return _CLAUSE
    return _WORD


def _choose_cut(text: str, max_chars: int, final: bool) -> tuple[int, int] | None:
    """(end, start) so that text[:end] is the next segment and text[start:] the rest."""
    content_end = len(text.rstrip())
    if final and content_end <= max_chars:
        return len(text), len(text)
    first_word, last_word = _word_span(text, final)
    hard_chars = 2 * max_chars  # a single "word" longer than this (CJK, junk) gets cut anyway
    window = text[: hard_chars + 2]
    cuts: list[tuple[int, int, int]] = []  # (end, start, rank)
    for m in re.finditer(r"[ \n]", window):
        if (rank := _rank_at_space(text, m.start(), final)) is not None:
            cuts.append((m.start(), m.end(), rank))
    for m in _CJK_CUT.finditer(window):
        cuts.append((m.end(), m.end(), _SENTENCE if m.group()[0] in _CJK_ENDS else _CLAUSE))
    # both sides must hold real words, so an emotion tag always travels with text: tags after
    # the last word go with the last segment, or wait while more words may follow them
    valid: list[tuple[int, int, int, int]] = []  # (chars counted against max, end, start, rank)
    for end, start, rank in sorted(cuts):
        if end <= first_word:
            continue
        if start < last_word or start >= content_end:
            valid.append((end, end, start, rank))
        elif final:
            valid.append((end, len(text), len(text), rank))
    within = [c for c in valid if c[0] <= max_chars]
    for rank in (_SENTENCE, _CLAUSE, _WORD):
        best = [c for c in within if c[3] == rank]
        if best and (rank == _SENTENCE or content_end > max_chars):
            return best[-1][1], best[-1][2]
    if not final and content_end <= max_chars:
        return None  # wait for a sentence end, a flush or the end of input
    beyond = [c for c in valid if c[0] > max_chars]
    if beyond and beyond[0][0] <= hard_chars:
        return beyond[0][1], beyond[0][2]
    if len(text) > hard_chars:
        cut = max_chars
        if (lt := text.rfind("<", 0, cut)) > text.rfind(">", 0, cut) and lt > 0:
            cut = lt  # never inside a tag
        return cut, cut
    return (len(text), len(text)) if final else None


class Chunker:
    """Pull-based segmenter: push_text() deltas, pop(max_chars) segments as they complete.

    pop() returns None until a segment is complete: a sentence end followed by whitespace
    (an ellipsis also needs the next word, whose case decides), or, for a sentence longer than
    max_chars, a clause or word boundary. Cuts fall on whitespace only, so words, numbers,
    URLs and tags stay whole. flush() releases what is buffered now (the next pop may return
    a partial sentence); end_input() says no more text will come.
    """

    def __init__(self) -> None:
        self._buf = ""
        self._flush_upto = 0  # the first _flush_upto chars of _buf are to be spoken now
        self._ended = False

    @property
    def pending_chars(self) -> int:
        return len(self._buf.strip())

    @property
    def done(self) -> bool:
        return self._ended and not self._buf.strip()

    def push_text(self, text: str) -> None:
        if self._ended:
            raise RuntimeError("push_text() after end_input()")
        text = _collapse(text)
        if self._buf[-1:].isspace() and text[:1].isspace():
            # merge the whitespace runs meeting at the junction, in place, so the flush
            # mark (an index into the old text) stays valid
            joint = "\n" if "\n" in self._buf[-1] + text[0] else " "
            self._buf = self._buf[:-1] + joint + text[1:]
        else:
            self._buf += text
        if self._buf[:1].isspace():
            self._buf = self._buf.lstrip()

    def flush(self) -> None:
        self._flush_upto = len(self._buf)

    def end_input(self) -> None:
        self._ended = True

    def pop(self, max_chars: int) -> str | None:
        if max_chars <= 0:
            raise ValueError(f"max_chars must be positive, got {max_chars}")
        if self._flush_upto and not self._buf[: self._flush_upto].strip():
            self._flush_upto = 0
        if self._flush_upto and self._flush_upto < len(self._buf):
            view, final = self._buf[: self._flush_upto], True
        else:
            view, final = self._buf, self._ended or self._flush_upto > 0
        if not view.strip():
            return None
        cut = _choose_cut(view, max_chars, final)
        if cut is None:
            return None
        end, start = cut
        segment = " ".join(view[:end].split())
        rest = self._buf[start:]
        self._buf = rest.lstrip()
        consumed = start + len(rest) - len(self._buf)
        self._flush_upto = max(0, self._flush_upto - consumed)
        return segment


def split_text(text: str, *, first_max_chars: int = 48, max_chars: int = 400) -> list[str]:
    """Segment a whole text: a short first segment for fast first audio, then larger ones."""
    chunker = Chunker()
    chunker.push_text(text)
    chunker.end_input()
    segments: list[str] = []
    while (seg := chunker.pop(max_chars if segments else first_max_chars)) is not None:
        segments.append(seg)
    return segments
