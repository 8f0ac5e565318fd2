"""Text front end: the pronunciation lexicon, its file, ElevenLabs rules, ARPAbet."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dsp.textfront import (
    FrontOptions,
    Lexicon,
    LexiconEntry,
    LexiconError,
    LexiconFile,
    Phonemes,
    Say,
    arpabet_to_ipa,
    from_elevenlabs_rules,
    load_lexicon,
    parse_lexicon,
)
from tests.test_textfront_util import pieces, said

FILE = (
    "# a comment\n"
    "Nginx\tengine x\n"
    "Kokoro\t/kəˈkɔɹoʊ/\n"
    "Kubernetes\t/ˌkuːbɚˈnɛtiz/\tkoo ber net eez\n"
    "New York\tthe Big Apple\n"
    "sql\tsequel\n"
    "US\tUnited States\n"
    "re:\\bv(\\d+)\\.(\\d+)\\b\tversion \\1 point \\2\n"
)


def test_parse_and_apply_aliases() -> None:
    lex = parse_lexicon(FILE)
    opts = FrontOptions(lexicon=lex)
    assert said("Nginx serves SQL, sql and Sql in the US for us", opts) == \
        "engine x serves sequel, sequel and sequel in the United States for us"
    assert said("v3.2 ships", opts) == "version 3 point 2 ships"


def test_multi_word_entry_across_deltas() -> None:
    opts = FrontOptions(lexicon=parse_lexicon(FILE))
    assert said("I love New York in May", opts) == "I love the Big Apple in May"
    assert said("New\nYork", opts) == "New York"  # a line break is not the phrase's space


def test_phonemes_for_engines_that_take_them() -> None:
    lex = parse_lexicon(FILE)
    text = "Kokoro and Kubernetes"
    ps = pieces(text, FrontOptions(lexicon=lex, phonemes=True))
    ph = [p for p in ps if isinstance(p, Phonemes)]
    assert [(p.text, p.ipa) for p in ph] == [("Kokoro", "kəˈkɔɹoʊ"), ("koo ber net eez", "ˌkuːbɚˈnɛtiz")]
    assert [text[p.start:p.end] for p in ph] == ["Kokoro", "Kubernetes"]
    # engines without phonemes say the word, or the alias given with the phonemes
    assert said(text, FrontOptions(lexicon=lex)) == "Kokoro and koo ber net eez"


def test_merge_puts_request_entries_first() -> None:
    base = parse_lexicon("Nginx\tengine x\n")
    req = Lexicon((LexiconEntry("Nginx", alias="n jinx"),))
    assert said("Nginx", FrontOptions(lexicon=base.merge(req))) == "n jinx"
    assert said("Nginx", FrontOptions(lexicon=base.merge([]))) == "engine x"


def test_bad_lines_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(LexiconError, match=r":2:"):
        parse_lexicon("ok\tfine\nbroken line without tab\n")
    with pytest.raises(LexiconError, match=r":1:"):
        parse_lexicon("re:(unclosed\tx\n")
    p = tmp_path / "lex.tsv"
    p.write_text(FILE, encoding="utf-8")
    assert len(load_lexicon(p).entries) == 7


def test_lexicon_file_reloads_on_change(tmp_path: Path) -> None:
    p = tmp_path / "lex.tsv"
    p.write_text("a\tb\n", encoding="utf-8")
    lf = LexiconFile(p)
    first = lf.get()
    assert lf.get() is first  # unchanged file: not re-read
    p.write_text("a\tb\nc\td\n", encoding="utf-8")
    os.utime(p, (1, 2))
    assert len(lf.get().entries) == 2
    p.write_text("bad\n", encoding="utf-8")
    os.utime(p, (3, 4))
    with pytest.raises(LexiconError):
        lf.get()
    assert len(lf.last.entries) == 2  # the last good one stays available


def test_elevenlabs_rules() -> None:
    lex = from_elevenlabs_rules([
        {"type": "alias", "string_to_replace": "Thailand", "alias": "tie-land"},
        {"type": "alias", "string_to_replace": "UN", "alias": "United Nations"},
        {"type": "phoneme", "string_to_replace": "tomato", "phoneme": "/təˈmeɪtoʊ/", "alphabet": "ipa"},
        {"type": "phoneme", "string_to_replace": "Kokoro", "phoneme": "K AH0 K AO1 R OW0",
         "alphabet": "cmu-arpabet"},
        {"type": "alias", "string_to_replace": "ab", "alias": "A B", "word_boundaries": False,
         "case_sensitive": False},
    ])
    assert said("Thailand and the UN, un", FrontOptions(lexicon=lex)) == \
        "tie-land and the United Nations, un"
    assert said("cab", FrontOptions(lexicon=lex)) == "cA B"
    ps = pieces("tomato Kokoro", FrontOptions(lexicon=lex, phonemes=True))
    assert [p.ipa for p in ps if isinstance(p, Phonemes)] == ["təˈmeɪtoʊ", "kəkˈɔɹoʊ"]
    with pytest.raises(LexiconError, match="rule 0"):
        from_elevenlabs_rules([{"type": "phoneme", "string_to_replace": "x", "phoneme": "Q9 ZZ",
                                "alphabet": "cmu-arpabet"}])
    with pytest.raises(LexiconError):
        from_elevenlabs_rules([{"type": "other", "string_to_replace": "x"}])


def test_arpabet() -> None:
    assert arpabet_to_ipa("HH AH0 L OW1") == "həlˈoʊ"
    assert arpabet_to_ipa("TH IH1 NG K") == "θˈɪŋk"
    assert arpabet_to_ipa("XX") is None


def test_alias_maps_to_the_word() -> None:
    text = "use Nginx now"
    ps = pieces(text, FrontOptions(lexicon=parse_lexicon(FILE)))
    alias = next(p for p in ps if isinstance(p, Say) and p.text == "engine x")
    assert text[alias.start:alias.end] == "Nginx"
