"""Chunker: boundaries, streaming deltas, tags, flush, and the no-word-lost property."""

from __future__ import annotations

import random
import re

import pytest

from dsp.chunker import ABBREVIATIONS, EMOTION_TAGS, Chunker, normalize_whitespace, split_text

TAG = re.compile(r"<[A-Za-z_]+>")
WORDS = (
    "the a voice server streams audio quickly while people talk about weather music and "
    "tomorrow's plans because nobody likes waiting for speech synthesis to finish"
).split()
SPECIAL = [
    "Dr.", "Mr.", "Mrs.", "Prof.", "e.g.", "i.e.", "etc.", "vs.", "J.", "U.S.",
    "3.14", "1,000", "v2.0", "$2.50", "https://example.com/a.b?c=1", "ann.lee@mail.example.org",
    "\"quoted\"", "(aside)", "well...", "so…", "—", "–", "10:30",
]  # fmt: skip
ENDS = [".", ".", ".", "!", "?", "...", "?!", '."', "!)"]


def random_text(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(1, 12)):
        words = []
        for _ in range(rng.randint(1, 30)):
            r = rng.random()
            if r < 0.12:
                words.append(rng.choice(SPECIAL))
            elif r < 0.17:
                words.append(f"<{rng.choice(EMOTION_TAGS)}>")
            else:
                w = rng.choice(WORDS)
                words.append(w + rng.choice(["", "", "", "", ",", ";", ":"]))
        words[0] = words[0][:1].upper() + words[0][1:]
        sep = rng.choice([" ", " ", "  ", "\n", "\n\n", " \t "])
        sentences.append(" ".join(words) + rng.choice(ENDS) + sep)
    return rng.choice(["", " ", "\n"]) + "".join(sentences)


def is_tag_only(segment: str) -> bool:
    return not TAG.sub("", segment).strip()


def check_segments(text: str, segments: list[str], max_chars: int) -> None:
    assert " ".join(segments) == normalize_whitespace(text)
    for seg in segments:
        assert seg and seg == seg.strip() and "\n" not in seg and "  " not in seg
        # a trailing tag joins the last segment, so count only the words against max_chars
        assert len(TAG.sub("", seg).strip()) <= max_chars, seg
        if not is_tag_only(text):
            assert not is_tag_only(seg), segments


def test_split_text_keeps_every_word_on_random_texts() -> None:
    rng = random.Random(1234)
    for _ in range(400):
        text = random_text(rng)
        first, rest = rng.choice([(48, 400), (30, 60), (48, 120), (80, 80)])
        segments = split_text(text, first_max_chars=first, max_chars=rest)
        check_segments(text, segments, rest)
        assert len(TAG.sub("", segments[0]).strip()) <= first


def test_streamed_deltas_keep_every_word() -> None:
    rng = random.Random(99)
    for _ in range(150):
        text = random_text(rng)
        chunker, segments = Chunker(), []
        pos = 0
        while pos < len(text):
            step = rng.randint(1, 12)  # token-sized deltas, cut anywhere, even inside tags
            chunker.push_text(text[pos : pos + step])
            pos += step
            while (seg := chunker.pop(100)) is not None:
                segments.append(seg)
        chunker.end_input()
        while (seg := chunker.pop(100)) is not None:
            segments.append(seg)
        assert chunker.done and chunker.pending_chars == 0
        check_segments(text, segments, 100)


def test_first_segment_is_short_for_a_long_sentence() -> None:
    text = (
        "When the morning train finally pulled into the station, the passengers gathered "
        "their bags and walked out into the rain."
    )
    assert 110 <= len(text) <= 130
    first = split_text(text)[0]
    assert len(first) <= 48
    assert first.endswith(",") or 5 <= len(first.split()) <= 8
    text2 = (
        "Nobody expected yesterday's meeting between the neighbouring councils to produce "
        "anything useful for ordinary residents."
    )
    first2 = split_text(text2)[0]
    assert 5 <= len(first2.split()) <= 8 and len(first2) <= 48


def test_sentence_end_preferred_then_clause_then_word() -> None:
    assert split_text("Hi there, friend. How are you doing, my dear?", first_max_chars=30)[0] == (
        "Hi there, friend."
    )
    text = "Well, this sentence is far too long to fit, so it must be cut at a clause."
    assert split_text(text, first_max_chars=50)[0] == "Well, this sentence is far too long to fit,"
    text = "This single clause has no punctuation at all and it keeps going on and on."
    assert split_text(text, first_max_chars=30)[0] == "This single clause has no"


def test_steady_segments_pack_several_sentences() -> None:
    text = "One. Two two. Three three three. Four four four four. " * 5
    segments = split_text(text, first_max_chars=10, max_chars=60)
    assert segments[0] == "One."
    assert all(s.endswith(".") for s in segments)
    assert max(len(s) for s in segments[1:]) > 40  # several sentences per segment


@pytest.mark.parametrize("abbr", sorted(a for a in ABBREVIATIONS if a[0].isalpha()))
def test_never_splits_after_abbreviation(abbr: str) -> None:
    word = abbr[:1].upper() + abbr[1:]
    chunker = Chunker()
    chunker.push_text(f"We saw {word} Brown there. Then we left")
    assert chunker.pop(200) == f"We saw {word} Brown there."
    assert chunker.pop(200) is None  # "left" may continue


def test_initials_numbers_urls_are_not_sentence_ends() -> None:
    chunker = Chunker()
    chunker.push_text(
        "J. R. R. Tolkien paid 1,000 coins, 3.14 each, at v2.0 of example.com/a.b or "
        "mail a.b@c.org. Next one"
    )
    assert chunker.pop(400) == (
        "J. R. R. Tolkien paid 1,000 coins, 3.14 each, at v2.0 of example.com/a.b or "
        "mail a.b@c.org."
    )
    segments = split_text(
        "Pi is 3.14159 and e is 2.71828, roughly, in v2.0.1 of the docs.", first_max_chars=20
    )
    joined = " | ".join(segments)
    for token in ("3.14159", "2.71828,", "v2.0.1"):
        assert any(token in s.split() for s in segments), joined


def test_ellipsis_followed_by_lowercase_is_not_a_boundary() -> None:
    chunker = Chunker()
    chunker.push_text("I was... thinking about it. Then")
    assert chunker.pop(200) == "I was... thinking about it."
    assert split_text("Wait... Then we left. Fine.", first_max_chars=10)[0] == "Wait..."
    chunker = Chunker()
    chunker.push_text("Wait... ")
    assert chunker.pop(200) is None  # the next word's case decides
    chunker.push_text("then we go.")
    assert chunker.pop(200) is None
    chunker.push_text(" Ok")
    assert chunker.pop(200) == "Wait... then we go."


def test_open_input_waits_for_whitespace_after_the_period() -> None:
    chunker = Chunker()
    chunker.push_text("Hello")
    assert chunker.pop(48) is None
    chunker.push_text(".")
    assert chunker.pop(48) is None  # "Hello.5"? "Hello.com"? not yet a boundary
    chunker.push_text(" ")
    assert chunker.pop(48) == "Hello."
    assert chunker.pop(48) is None and not chunker.done
    chunker.push_text("Bye!")
    assert chunker.pop(48) is None
    chunker.end_input()
    assert chunker.pop(48) == "Bye!"
    assert chunker.pop(48) is None and chunker.done


def test_emotion_tags_stay_attached() -> None:
    assert split_text("<laugh>") == ["<laugh>"]
    assert split_text("That was funny. <laugh>", first_max_chars=16) == ["That was funny. <laugh>"]
    assert split_text("<sigh> Fine. Let us go.", first_max_chars=8) == [
        "<sigh> Fine.",
        "Let us go.",
    ]
    for tag in EMOTION_TAGS:
        text = f"First part here. <{tag}> Second part here. Third."
        segments = split_text(text, first_max_chars=20, max_chars=30)
        assert f"<{tag}> Second part here." in segments
    # a tag arriving in pieces at the end of open input holds the boundary before it
    chunker = Chunker()
    chunker.push_text("Great news! <lau")
    assert chunker.pop(48) is None
    chunker.push_text("gh>")
    assert chunker.pop(48) is None
    chunker.end_input()
    assert chunker.pop(48) == "Great news! <laugh>"


def test_flush_releases_partial_text() -> None:
    chunker = Chunker()
    chunker.push_text("Hello there my")
    assert chunker.pop(48) is None
    chunker.flush()
    assert chunker.pending_chars == len("Hello there my")
    assert chunker.pop(48) == "Hello there my"
    chunker.push_text(" friend, how")
    assert chunker.pop(48) is None  # the flush covered only the earlier text
    chunker.flush()
    chunker.push_text(" are you. And")
    assert chunker.pop(48) == "friend, how"
    assert chunker.pop(48) == "are you."
    assert chunker.pop(48) is None
    assert chunker.pending_chars == 3


def test_whitespace_and_newlines() -> None:
    assert split_text("  Hello   world.\n\n  Bye\tnow.  ") == ["Hello world. Bye now."]
    assert split_text("line one\nline two\nline three", first_max_chars=12, max_chars=12) == [
        "line one",
        "line two",
        "line three",
    ]
    assert split_text("") == [] and split_text(" \n\t ") == []


def test_long_word_is_kept_whole_and_cjk_is_cut_at_its_punctuation() -> None:
    url = "https://example.com/" + "x" * 60
    assert split_text(f"See {url} now.", first_max_chars=40) == ["See", url + " now."]
    assert split_text(
        "你好。我很好。今天天气不错，我们去公园吧！", first_max_chars=5, max_chars=10
    ) == [
        "你好。",
        "我很好。",
        "今天天气不错，",
        "我们去公园吧！",
    ]


def test_chunker_errors() -> None:
    chunker = Chunker()
    chunker.end_input()
    with pytest.raises(RuntimeError):
        chunker.push_text("more")
    with pytest.raises(ValueError):
        chunker.pop(0)
