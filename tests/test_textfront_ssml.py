"""Text front end: SSML as clients send it, and emotion tags (issue 20)."""

from __future__ import annotations

import pytest

from dsp.textfront import FrontOptions, Pause, Phonemes, Rate, Say, Tag
from tests.test_textfront_util import pieces, said


def test_speak_document_with_break() -> None:
    text = '<speak>Hello <break time="1s"/> world</speak>'
    assert said(text) == "Hello world"
    ps = pieces(text)
    assert [p.ms for p in ps if isinstance(p, Pause)] == [1000]
    pause = next(p for p in ps if isinstance(p, Pause))
    assert text[pause.start:pause.end] == '<break time="1s"/>'


@pytest.mark.parametrize("tag, ms", [
    ('<break time="1.5s"/>', 1500), ("<break time='250ms'/>", 250), ('<break time="60s"/>', 5000),
    ('<break strength="strong"/>', 750), ("<break/>", 400), ('<break time="oops"/>', 400),
])
def test_break_lengths(tag: str, ms: int) -> None:
    assert [p.ms for p in pieces(f"a {tag} b") if isinstance(p, Pause)] == [ms]


def test_break_cap_is_an_option() -> None:
    opts = FrontOptions(max_break_ms=800)
    assert [p.ms for p in pieces('a <break time="3s"/> b', opts) if isinstance(p, Pause)] == [800]


def test_elevenlabs_inline_tags_without_speak() -> None:
    assert said('Wait <break time="1.5s" /> for it. <prosody rate="slow">Slowly</prosody> now') == \
        "Wait for it. Slowly now"
    rates = [p.speed for p in pieces('<prosody rate="slow">Slowly</prosody> now') if isinstance(p, Rate)]
    assert rates == [0.75, 1.0]


@pytest.mark.parametrize("rate, speed", [("x-fast", 1.5), ("80%", 0.8), ("+20%", 1.2), ("1.1", 1.1),
                                         ("900%", 2.0)])
def test_prosody_rate_hint(rate: str, speed: float) -> None:
    ps = pieces(f'<prosody rate="{rate}">x</prosody>')
    assert [p.speed for p in ps if isinstance(p, Rate)] == [speed, 1.0]


def test_phoneme_for_engines_with_and_without_phonemes() -> None:
    text = 'I say <phoneme alphabet="ipa" ph="təˈmɑːtoʊ">tomato</phoneme>.'
    assert said(text) == "I say tomato."
    ps = pieces(text, FrontOptions(phonemes=True))
    ph = [p for p in ps if isinstance(p, Phonemes)]
    assert len(ph) == 1 and ph[0].ipa == "təˈmɑːtoʊ" and ph[0].text == "tomato"
    assert said(text, FrontOptions(phonemes=True)) == "I say tomato."
    arpa = pieces('<phoneme alphabet="cmu-arpabet" ph="T AH0 M EY1 T OW2">tomato</phoneme>',
                  FrontOptions(phonemes=True))
    assert [p.ipa for p in arpa if isinstance(p, Phonemes)] == ["təmˈeɪtˌoʊ"]


def test_sub_alias_maps_to_the_element() -> None:
    text = 'The <sub alias="World Wide Web Consortium">W3C</sub> says'
    assert said(text) == "The World Wide Web Consortium says"
    sub = next(p for p in pieces(text) if isinstance(p, Say) and "Consortium" in p.text)
    assert text[sub.start:sub.end].startswith("<sub") and text[sub.start:sub.end].endswith("</sub>")


@pytest.mark.parametrize("interp, body, expected", [
    ("characters", "abc", "a b c"), ("spell-out", "NASA", "N A S A"), ("cardinal", "1,234",
     "one thousand two hundred thirty-four"), ("ordinal", "3", "third"), ("digits", "2026",
     "two zero two six"), ("telephone", "555-1234", "five five five, one two three four"),
    ("date", "12/05/2026", "December fifth, twenty twenty-six"), ("unknown-kind", "x1", "x one"),
])
def test_say_as(interp: str, body: str, expected: str) -> None:
    assert said(f'<say-as interpret-as="{interp}">{body}</say-as>') == expected


def test_say_as_date_format() -> None:
    assert said('<say-as interpret-as="date" format="dmy">12/05/2026</say-as>') == \
        "May twelfth, twenty twenty-six"


@pytest.mark.parametrize("text, expected", [
    ('<break time="1s"', 'break time equals"one second"'),  # never closed: "<" goes, words stay
    ("<phoneme ph='x'>word", "word"),  # element never closed: its text is said
    ("<speak><p>One</p><p>Two</p>", "One Two"),
    ("a < b and c > d", "a less than b and c greater than d"),
])
def test_malformed_ssml_falls_back_to_text(text: str, expected: str) -> None:
    out = said(text)
    assert out == expected
    assert "<" not in out.replace("<laugh>", "")


def test_emotion_tags_dropped_by_default() -> None:
    assert said("Well <laugh> that was funny. <sigh> Anyway, let's go.") == \
        "Well that was funny. Anyway, let's go."


def test_emotion_tags_kept_for_engines_that_voice_them() -> None:
    opts = FrontOptions(voiced_tags=frozenset({"laugh", "sigh"}))
    text = "Well <laugh> that was funny. <sigh> Anyway, let's go."
    assert said(text, opts) == "Well <laugh> that was funny. <sigh> Anyway, let's go."
    tags = [p for p in pieces(text, opts) if isinstance(p, Tag)]
    assert [t.name for t in tags] == ["laugh", "sigh"]
    assert [text[t.start:t.end] for t in tags] == ["<laugh>", "<sigh>"]


def test_only_voiced_tags_are_kept() -> None:
    opts = FrontOptions(voiced_tags=frozenset({"laugh"}))
    assert said("ha <laugh> hm <cough> ok", opts) == "ha <laugh> hm ok"


def test_ssml_off_still_strips_tags() -> None:
    opts = FrontOptions(ssml=False)
    assert said('Hi <break time="2s"/> <sub alias="x">y</sub>', opts) == "Hi y"
    assert not [p for p in pieces('Hi <break time="2s"/> there', opts) if isinstance(p, Pause)]
