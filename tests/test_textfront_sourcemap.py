"""Text front end: spoken words map back to the client's text; the text heard so far."""

from __future__ import annotations

from dsp.textfront import FrontOptions, SourceMap, heard_source, source_span, spoken_text
from tests.test_textfront_util import pieces


def _words(text: str, opts: FrontOptions | None = None) -> list[tuple[str, str]]:
    return [(w, text[s:e]) for w, s, e in SourceMap(pieces(text, opts)).words()]


def test_rewrite_maps_as_a_whole() -> None:
    text = "It costs $1,234.56 today."
    words = _words(text)
    assert words[:2] == [("It", "It"), ("costs", "costs")]
    assert {src for _, src in words[2:-1]} == {"$1,234.56"}
    assert words[-1] == ("today.", "today.")


def test_unchanged_text_maps_char_for_char() -> None:
    text = "**Sure!** Here's the *plan*"
    ps = pieces(text)
    sm = SourceMap(ps)
    spoken = sm.spoken_text
    assert spoken == "Sure! Here's the plan"
    for i, ch in enumerate(spoken):
        s, e = sm.source_span(i, i + 1)  # type: ignore[misc]
        assert e - s == 1 and text[s] == ch
    assert source_span(ps, 0, len(spoken)) == (2, len(text) - 1)


def test_markup_maps_to_nothing() -> None:
    text = "# Title\n[link](https://x.com) 🎉"
    covered = set()
    for p in pieces(text):
        covered.update(range(p.start, p.end))
    assert not covered & set(range(text.index("("), text.index(")") + 1))
    assert text.index("🎉") not in covered
    assert 0 not in covered  # the heading marker


def test_heard_source_keeps_the_agents_markdown() -> None:
    text = "**Sure!** Here's the plan:\n2. Book the *table*."
    ps = pieces(text)
    sm = SourceMap(ps)
    assert sm.heard_source(text, 0) == ""
    assert sm.heard_source(text, sm.chars_after_words(1)) == "**Sure!**"
    assert sm.heard_source(text, sm.chars_after_words(4)) == "**Sure!** Here's the plan:"
    assert sm.heard_source(text, sm.chars_after_words(7)) == text
    assert heard_source(text, ps, sm.spoken_len) == text


def test_heard_source_leaves_unheard_openers_out() -> None:
    text = "Sure **Next** one"
    sm = SourceMap(pieces(text))
    assert sm.heard_source(text, sm.chars_after_words(1)) == "Sure"
    assert sm.heard_source(text, sm.chars_after_words(2)) == "Sure **Next**"


def test_a_rewrite_is_heard_only_in_full() -> None:
    text = "Pay $5.25 now"
    sm = SourceMap(pieces(text))
    spoken = sm.spoken_text
    assert spoken == "Pay five dollars and twenty-five cents now"
    assert sm.heard_source(text, spoken.index("dollars")) == "Pay "
    assert sm.heard_source(text, spoken.index(" now")) == "Pay $5.25"


def test_offsets_are_cumulative_over_deltas() -> None:
    text = "one two\nthree 4 five"
    ps = pieces(text, step=3)
    assert spoken_text(ps) == "one two\nthree four five"
    four = next(p for p in ps if p.spoken == "four")
    assert text[four.start:four.end] == "4"


def test_pieces_cover_source_in_order() -> None:
    text = "Hi **there** [x](http://y.z) <break time='1s'/> $5 🎉\n- item\n"
    ps = pieces(text, FrontOptions())
    last = 0
    for p in ps:
        assert p.start >= last and p.end >= p.start
        last = max(last, p.start)
    assert all(0 <= p.start <= p.end <= len(text) for p in ps)
