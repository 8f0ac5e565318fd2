"""Orpheus' 24 voices in 8 languages, their emotion tags, and the prompt format they expect."""

from __future__ import annotations

from adapters.base import Voice

BACKEND = "snac_llamacpp"
DEFAULT_VOICE = "tara"

# (id, language, gender, description); English ranked by Canopy's "conversational realism".
_VOICES: tuple[tuple[str, str, str, str], ...] = (
    ("tara", "en", "female", "conversational, clear"),
    ("leah", "en", "female", "warm, gentle"),
    ("jess", "en", "female", "energetic, youthful"),
    ("leo", "en", "male", "authoritative, deep"),
    ("dan", "en", "male", "friendly, casual"),
    ("mia", "en", "female", "professional, articulate"),
    ("zac", "en", "male", "enthusiastic, dynamic"),
    ("zoe", "en", "female", "calm, soothing"),
    ("pierre", "fr", "male", "sophisticated"),
    ("amelie", "fr", "female", "elegant"),
    ("marie", "fr", "female", "spirited"),
    ("jana", "de", "female", "clear"),
    ("thomas", "de", "male", "authoritative"),
    ("max", "de", "male", "energetic"),
    ("유나", "ko", "female", "melodic"),
    ("준서", "ko", "male", "confident"),
    ("ऋतिका", "hi", "female", "expressive"),
    ("长乐", "zh", "female", "gentle"),
    ("白芷", "zh", "female", "clear"),
    ("javi", "es", "male", "warm"),
    ("sergio", "es", "male", "professional"),
    ("maria", "es", "female", "friendly"),
    ("pietro", "it", "male", "passionate"),
    ("giulia", "it", "female", "expressive"),
    ("carlo", "it", "male", "refined"),
)

ORPHEUS_VOICES: tuple[Voice, ...] = tuple(
    Voice(id=vid, name=vid.capitalize() if vid.isascii() else vid, language=lang,
          gender=gender, description=desc, backend=BACKEND)
    for vid, lang, gender, desc in _VOICES
)

LANGUAGES: tuple[str, ...] = ("en", "fr", "de", "ko", "hi", "zh", "es", "it")

# Paralinguistic tags each language's finetune was trained on (Canopy, via Orpheus-FastAPI
# issue #31); they go into the prompt verbatim as `<tag>`. Hindi: none published yet.
EMOTION_TAGS_BY_LANGUAGE: dict[str, tuple[str, ...]] = {
    "en": ("laugh", "chuckle", "sigh", "cough", "sniffle", "groan", "yawn", "gasp"),
    "fr": ("chuckle", "cough", "gasp", "groan", "laugh", "sigh", "sniffle", "whimper", "yawn"),
    "de": ("chuckle", "cough", "gasp", "groan", "laugh", "sigh", "sniffle", "yawn"),
    "ko": ("한숨", "헐", "헛기침", "훌쩍", "하품", "낄낄", "신음", "작은 웃음", "기침", "으르렁"),
    "zh": ("嬉笑", "轻笑", "呻吟", "大笑", "咳嗽", "抽鼻子", "咳"),
    "es": ("groan", "chuckle", "gasp", "resoplido", "laugh", "yawn", "cough"),
    "it": ("sigh", "laugh", "cough", "sniffle", "groan", "yawn", "gemito", "gasp"),
    "hi": (),
}

EMOTION_TAGS: tuple[str, ...] = tuple(
    dict.fromkeys(f"<{t}>" for tags in EMOTION_TAGS_BY_LANGUAGE.values() for t in tags)
)

_BY_ID = {v.id.lower(): v for v in ORPHEUS_VOICES}

# The official Orpheus prompt (canopyai engine_class: [128259] + tokenize("voice: text") +
# [128009, 128260, 128261, 128257], decoded): start-of-human, the text with its BOS, end-of-text,
# end-of-human, start-of-AI, start-of-speech. It is what the finetunes were trained on; the
# shorter `<|audio|>voice: text<|eot_id|>` of Orpheus-FastAPI leaves the model to invent the
# turn markers and sometimes never reaches end-of-speech (Orpheus-FastAPI issue #65).
PROMPT_FORMAT = (
    "<custom_token_3><|begin_of_text|>{voice}: {text}<|eot_id|>"
    "<custom_token_4><custom_token_5><custom_token_1>"
)
END_OF_SPEECH = "<custom_token_2>"


def resolve_voice(voice: str | None, language: str | None = None) -> Voice:
    """The Orpheus voice for a request: by id (case-insensitive), else the first voice of
    `language`, else tara. The caller tells the client when its choice was replaced."""
    if voice:
        found = _BY_ID.get(voice.strip().lower())
        if found is not None:
            return found
    if language:
        lang = language.lower().split("-")[0]
        for v in ORPHEUS_VOICES:
            if v.language == lang:
                return v
    return _BY_ID[DEFAULT_VOICE]


def format_prompt(voice: str, text: str) -> str:
    return PROMPT_FORMAT.format(voice=voice, text=text)
