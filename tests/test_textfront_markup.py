"""Text front end: markdown, HTML and emoji a listener should not hear (issue 20)."""

from __future__ import annotations

import pytest

from dsp.textfront import CodePolicy, EmojiPolicy, FrontOptions, Pause, Say
from tests.test_textfront_util import pieces, said


def test_issue_plan_example() -> None:
    assert said("**Sure!** Here's the plan:\n2. Book the *table*.") == \
        "Sure! Here's the plan: Book the table."


def test_list_numbers_spoken_when_asked() -> None:
    opts = FrontOptions(list_numbers=True)
    assert said("Plan:\n1. Book the table\n2. Call Sam", opts) == \
        "Plan: one, Book the table. two, Call Sam."


def test_pause_between_list_items_and_after_heading() -> None:
    ps = pieces("# Trip\n- pack\n- go\n\nThen rest.")
    pauses = [p.ms for p in ps if isinstance(p, Pause)]
    assert pauses == [300, 300, 500]  # heading->item, item->item, blank line
    assert said("# Trip\n- pack\n- go\n\nThen rest.") == "Trip. pack. go. Then rest."


@pytest.mark.parametrize("text, expected", [
    ("x**2 is big", "x to the power of two is big"),
    ("match *.py files", "match .py files"),
    ("use snake_case names", "use snake case names"),
    ("call __init__ first", "call init first"),
    ("5 * 3 = 15", "five times three equals fifteen"),
    ("Hi **Frankie**!", "Hi Frankie!"),
    ("(**1**) done", "(one) done"),
    ("***very*** _quite_ __bold__", "very quite bold"),
    ("**unterminated bold and *nested **deep** emphasis", "unterminated bold and nested deep emphasis"),
    ("~~$50~~ now $40", "now forty dollars"),
])
def test_emphasis_boundaries(text: str, expected: str) -> None:
    assert said(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("see [the docs](https://example.com/docs?x=1) now", "see the docs now"),
    ("![a cat on a mat](https://x.io/cat.png)", "a cat on a mat"),
    ("read [this][1] and note[^2]", "read this and note"),
    ("run `pip install` then", "run pip install then"),
    ("> quoted wisdom", "quoted wisdom"),
    ("a <b>bold</b> move<br/>next", "a bold move next"),
    ("Tom &amp; Jerry&nbsp;said x &lt; 3", "Tom and Jerry said x less than three"),
    ("before\n\n---\n\nafter", "before after"),
    ("<!-- hidden --> shown", "shown"),
])
def test_inline_markup(text: str, expected: str) -> None:
    assert said(text) == expected


def test_table_is_read_a_row_at_a_time() -> None:
    text = "| Name | Age |\n|------|:---:|\n| Alice | 30 |\n| Bob | 41 |\n"
    assert said(text) == "Name, Age. Alice, thirty. Bob, forty-one."
    assert sum(isinstance(p, Pause) for p in pieces(text)) == 2
    assert said("| a | b |\n|---|---|\n| 1 | 2 |") == "a, b. one, two."  # no newline at the end


@pytest.mark.parametrize("policy, expected", [
    (CodePolicy.NOTE, "Here: Code omitted. Done."),
    (CodePolicy.SKIP, "Here: Done."),
    (CodePolicy.READ, "Here: print(x) Done."),
])
def test_fenced_code_policy(policy: CodePolicy, expected: str) -> None:
    text = "Here:\n```python\nprint(x)\n```\nDone."
    assert said(text, FrontOptions(code=policy)) == expected


def test_code_note_maps_to_the_fence() -> None:
    text = "Here:\n```\nx = 1\n```\n"
    note = [p for p in pieces(text) if isinstance(p, Say) and "omitted" in p.text]
    assert len(note) == 1 and text[note[0].start:note[0].end] == "```"


def test_emoji_silent_by_default() -> None:
    assert said("Great news 🎉 your order has shipped 😊 ... 👍") == \
        "Great news your order has shipped ..."


def test_emoji_names_when_asked() -> None:
    assert said("Party 🎉!", FrontOptions(emoji=EmojiPolicy.NAME)) == "Party party popper !"


@pytest.mark.parametrize("text, expected", [
    ("Press 1️⃣ now", "Press one now"),
    ("✓ fast ✔ cheap ✗ slow", "fast cheap slow"),
    ("Settings → Privacy", "Settings to Privacy"),
    ("up ↑ down ↓", "up down"),
    ("👨‍💻 coder 👍🏽 🇺🇸 flag", "coder flag"),
    ("zero\u200bwidth\u00adsoft\ufeff", "zerowidthsoft"),
])
def test_pictographs_and_invisibles(text: str, expected: str) -> None:
    assert said(text) == expected


def test_markup_stripped_when_normalization_is_off() -> None:
    opts = FrontOptions(normalize=False)
    assert said("**Sure!** It costs $5 on 12/05.\n- *item* 🎉", opts) == \
        "Sure! It costs $5 on 12/05. item."
