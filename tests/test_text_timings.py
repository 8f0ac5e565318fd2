"""Timings after the text front end: marks and heard_text name the client's own text.

The synthetic engine times every character exactly (60 ms each), so where each of the client's
words must fall is known: "$1,234.56" becomes one mark spanning all the words said for it,
markup is never a mark of its own, and heard_text keeps the client's markdown.
"""

from __future__ import annotations

from adapters.synthetic import SyntheticAdapter, SyntheticKnobs
from server.core.events import Words
from server.core.stream import StreamSpec
from tests.sim import make_orchestrator, spoken


async def marks_for(text: str, deltas: int | None = None, **spec: object):  # noqa: ANN201
    orch = make_orchestrator({"synthetic": SyntheticAdapter(SyntheticKnobs())})
    if deltas is None:
        stream, events = await spoken(orch, text, StreamSpec(**spec))  # type: ignore[arg-type]
    else:
        stream = await orch.open(StreamSpec(**spec))  # type: ignore[arg-type]
        for i in range(0, len(text), deltas):
            stream.push_text(text[i:i + deltas])
        stream.end_input()
        events = [ev async for ev in stream]
        await stream.aclose()
    return stream, [w for ev in events if isinstance(ev, Words) for w in ev.words]


TEXT = "**Sure!** It costs $1,234.56 today, see [the page](https://example.com)."


async def test_a_rewrite_is_one_mark_of_what_was_typed() -> None:
    stream, marks = await marks_for(TEXT)
    assert [m.text for m in marks] == ["Sure!", "It", "costs", "$1,234.56", "today,", "see",
                                       "the", "page."]
    money = marks[3]
    assert money.spoken.startswith("one thousand two hundred thirty") and "cents" in money.spoken
    assert money.source is not None and TEXT[money.source[0]:money.source[1]] == "$1,234.56"
    for a, b in zip(marks, marks[1:], strict=False):  # in order (a seam's 50 ms crossfade
        assert a.start_ms <= a.end_ms and a.start_ms <= b.start_ms  # may overlap two words)
    # the money's mark spans every word said for it: 60 ms per spoken character
    assert money.end_ms - money.start_ms >= 0.9 * 60 * len(money.spoken)


async def test_deltas_give_the_same_marks() -> None:
    _, whole = await marks_for(TEXT)
    for size in (1, 3, 7):
        _, streamed = await marks_for(TEXT, deltas=size)
        assert [(m.text, m.spoken) for m in streamed] == [(m.text, m.spoken) for m in whole]


async def test_heard_text_is_the_clients_own_text_with_its_markup() -> None:
    stream, marks = await marks_for(TEXT)
    assert stream.heard_text(0) == ""
    assert stream.heard_text(marks[0].end_ms) == "**Sure!**"  # the closing ** goes with it
    assert stream.heard_text(marks[2].end_ms) == "**Sure!** It costs"
    # a rewrite counts only when heard in full
    assert stream.heard_text(marks[3].start_ms + 1) == "**Sure!** It costs"
    assert stream.heard_text(marks[3].end_ms) == "**Sure!** It costs $1,234.56"
    assert stream.heard_text(marks[-1].end_ms) == TEXT


async def test_without_normalization_words_are_the_typed_ones() -> None:
    _, marks = await marks_for("Pay $5 now.", normalize=False)
    assert [m.text for m in marks] == ["Pay", "$5", "now."]
    assert all(not m.spoken or m.spoken == m.text for m in marks)


async def test_pauses_become_silence_between_items() -> None:
    orch = make_orchestrator({"synthetic": SyntheticAdapter(SyntheticKnobs())})
    plain, _ = await spoken(orch, "First item. Second item.")
    listed, _ = await spoken(orch, "- First item\n- Second item")
    # the same words at 60 ms a character (less the space between them) and a 300 ms pause
    assert 270 < listed.audio_ms - (plain.audio_ms - 60) < 330
