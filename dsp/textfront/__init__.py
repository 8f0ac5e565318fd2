"""Streaming text front end: markup, emoji, SSML, normalization and the lexicon, mapped to source."""

from dsp.textfront.arpabet import arpabet_to_ipa
from dsp.textfront.front import TextFront
from dsp.textfront.languages import Normalizer, Rewrite, normalizer_for, register_language
from dsp.textfront.lexicon import (
    Lexicon,
    LexiconEntry,
    LexiconError,
    LexiconFile,
    from_elevenlabs_rules,
    load_lexicon,
    parse_lexicon,
)
from dsp.textfront.options import CodePolicy, DateOrder, EmojiPolicy, FrontOptions
from dsp.textfront.pieces import Pause, Phonemes, Piece, Rate, Say, Tag, spoken_text
from dsp.textfront.sourcemap import SourceMap, heard_source, source_span

__all__ = [
    "CodePolicy",
    "DateOrder",
    "EmojiPolicy",
    "FrontOptions",
    "Lexicon",
    "LexiconEntry",
    "LexiconError",
    "LexiconFile",
    "Normalizer",
    "Pause",
    "Phonemes",
    "Piece",
    "Rate",
    "Rewrite",
    "Say",
    "SourceMap",
    "Tag",
    "TextFront",
    "arpabet_to_ipa",
    "from_elevenlabs_rules",
    "heard_source",
    "load_lexicon",
    "normalizer_for",
    "parse_lexicon",
    "register_language",
    "source_span",
    "spoken_text",
]
