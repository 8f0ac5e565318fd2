"""dsp.text: what reaches an engine is encodable and free of control characters."""

from __future__ import annotations

from dsp.text import clean_text, has_speech


def test_printable_text_is_returned_unchanged() -> None:
    s = "Hello, world! Ça va? 你好。 <laugh> 3.14"
    assert clean_text(s) is s


def test_controls_are_dropped_but_newline_and_tab_kept() -> None:
    assert clean_text("hi \u0000 there") == "hi  there"
    assert clean_text("a\x07b\x1bc\x7fd") == "abcd"
    assert clean_text("line one\r\nline two\rthree\tfour") == "line one\nline two\nthree\tfour"


def test_invalid_code_points_become_spaces_and_encode() -> None:
    out = clean_text("a\ud800b\udfffc\ufffed\U0010ffff")
    assert out == "a b c d "
    out.encode("utf-8")  # would raise on a surrogate


def test_format_characters_that_scripts_need_are_kept() -> None:
    s = "क्\u200dष \u200b"  # a joiner inside a Devanagari conjunct, a zero-width space
    assert clean_text(s + "\x00") == s


def test_has_speech() -> None:
    assert has_speech("Hi") and has_speech("42") and has_speech("ऋतिका") and has_speech("长乐")
    assert not has_speech("")
    assert not has_speech(" \n\t ")
    assert not has_speech("?!... —")
    assert not has_speech(clean_text("\x00\x01\x02"))
