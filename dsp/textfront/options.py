"""Settings of the text front end for one stream: what to strip, what to say, what the engine takes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from dsp.textfront.lexicon import Lexicon


class EmojiPolicy(str, Enum):
    DROP = "drop"  # silent (default): a listener hears no "party popper"
    NAME = "name"  # say the Unicode name ("party popper")


class CodePolicy(str, Enum):
    NOTE = "note"  # say `code_note` once per fenced block (default): the listener knows to look
    SKIP = "skip"  # silent
    READ = "read"  # read the lines as text


class DateOrder(str, Enum):
    MDY = "mdy"  # 12/05/2026 = December 5 (default, as US English readers expect)
    DMY = "dmy"  # 12/05/2026 = 12 May


@dataclass(frozen=True, slots=True)
class FrontOptions:
    """normalize=False is ElevenLabs' apply_text_normalization=off: numbers, dates, URLs,
    abbreviations are left as typed; markup, emoji, SSML and the lexicon still apply, because
    no engine should read "asterisk"."""

    normalize: bool = True
    language: str = "en"  # a language without registered rules passes through unnormalized
    emoji: EmojiPolicy = EmojiPolicy.DROP
    code: CodePolicy = CodePolicy.NOTE
    code_note: str = "Code omitted."
    date_order: DateOrder = DateOrder.MDY
    list_numbers: bool = False  # say "two" for "2." in a numbered list (default: a pause only)
    voiced_tags: frozenset[str] = frozenset()  # emotion tags the engine voices; others are dropped
    phonemes: bool = False  # the engine takes IPA (Piper, espeak, Kokoro): Phonemes pieces
    ssml: bool = True  # interpret SSML tags (break, phoneme, sub, say-as, prosody)
    lexicon: Lexicon = field(default_factory=Lexicon)
    item_pause_ms: int = 300  # between list items, table rows, after a heading
    paragraph_pause_ms: int = 500  # at a blank line, a rule, a code block
    max_break_ms: int = 5000  # an SSML break is capped here


__all__ = ["CodePolicy", "DateOrder", "EmojiPolicy", "FrontOptions"]
