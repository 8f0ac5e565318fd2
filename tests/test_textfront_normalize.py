"""Text front end: English normalization per category, the language registry, normalize off."""

from __future__ import annotations

import pytest

from dsp.textfront import DateOrder, FrontOptions, Rewrite, normalizer_for, register_language
from dsp.textfront.en.numbers import cardinal, ordinal, year
from tests.test_textfront_util import said


def test_issue_examples() -> None:
    assert said("due on 12/05/2026 at 3:30 PM. Call +1 (555) 123-4567.") == (
        "due on December fifth, twenty twenty-six at three thirty P M. "
        "Call plus one, five five five, one two three, four five six seven.")
    assert said("Visit https://example.com/docs?page=2 or email help@example.com") == \
        "Visit example dot com slash docs or email help at example dot com"


CASES = {
    "cardinal": [("I have 3 cats and 1,234 dogs", "I have three cats and one thousand two hundred "
                  "thirty-four dogs"), ("-5 degrees", "minus five degrees"),
                 ("007 and 1234567890123456789", "zero zero seven and one two three four five six "
                  "seven eight nine zero one two three four five six seven eight nine")],
    "ordinal": [("the 1st, 2nd, 3rd, 22nd and 101st", "the first, second, third, twenty-second and "
                 "one hundred first")],
    "decimal": [("pi is 3.14", "pi is three point one four"), ("v2.0.1 ships", "version two point "
                 "zero point one ships"), ("IP 192.168.0.1", "I P one hundred ninety-two dot one "
                 "hundred sixty-eight dot zero dot one")],
    "fraction": [("add 1/2 cup and 3/4 tsp", "add one half cup and three quarters tsp"),
                 ("3 1/2 hours, ½ off, 24/7", "three and a half hours, one half off, twenty-four seven")],
    "percent": [("up 12.5% or 10-20%", "up twelve point five percent or ten to twenty percent")],
    "range": [("3-5 days", "three to five days"), ("in 2020–2024", "in twenty twenty to twenty "
              "twenty-four"), ("5-10 km", "five to ten kilometers")],
    "money": [("$1,234.56", "one thousand two hundred thirty-four dollars and fifty-six cents"),
              ("$1.5 million", "one point five million dollars"), ("$5.500", "five point five zero zero dollars"),
              ("$0.50 or $1", "fifty cents or one dollar"), ("€20, £15.99, ¥3000", "twenty euros, fifteen "
               "pounds and ninety-nine pence, three thousand yen"), ("$2k and $3B", "two thousand dollars "
               "and three billion dollars"), ("5€ or 10 USD", "five euros or ten dollars"),
              ("-$5", "minus five dollars"), ("$9/mo or $99/yr", "nine dollars per month or ninety-nine "
                                               "dollars per year")],
    "date": [("on 2026-12-05", "on December fifth, twenty twenty-six"), ("Dec 5", "December fifth"),
             ("March 3rd, 2025", "March third, twenty twenty-five"), ("5 December 2026", "the fifth of "
              "December, twenty twenty-six"), ("on 12/05/2026", "on December fifth, twenty twenty-six"),
             ("on 25/12/2026", "on December twenty-fifth, twenty twenty-six")],
    "time": [("at 3:30 PM", "at three thirty P M"), ("at 9 a.m. Then", "at nine A M. Then"),
             ("at 15:30 or 15:00", "at fifteen thirty or fifteen hundred"), ("3pm or 3:05 am",
              "three P M or three oh five A M"), ("at 9:00", "at nine o'clock")],
    "year": [("in 1999 and 2026", "in nineteen ninety-nine and twenty twenty-six"), ("in 2005",
              "in two thousand five"), ("the 1990s and 80s", "the nineteen nineties and eighties")],
    "phone": [("call 555-123-4567", "call five five five, one two three, four five six seven"),
              ("+44 20 7946 0958", "plus four four, two zero, seven nine four six, zero nine five eight"),
              ("dial 1-800-555-1234", "dial one, eight zero zero, five five five, one two three four")],
    "unit": [("72°F or 22°C", "seventy-two degrees Fahrenheit or twenty-two degrees Celsius"),
             ("15 mph, 100 km/h", "fifteen miles per hour, one hundred kilometers per hour"),
             ("2.5 GB in 300 ms", "two point five gigabytes in three hundred milliseconds"),
             ("5m, 1 kg, 10s", "five meters, one kilogram, ten seconds"),
             ("5 m away and 5 s", "five m away and five s")],  # lone letters only glued to digits
    "abbreviation": [("Dr. Smith lives on Main St. near St. Louis.", "Doctor Smith lives on Main Street "
                      "near Saint Louis."), ("e.g. this, i.e. that, cats vs. dogs, etc. The end",
                      "for example this, that is that, cats versus dogs, et cetera. The end"),
                     ("Mr. and Mrs. Lee", "Mister and Missus Lee"), ("No. 5", "number five")],
    "initialism": [("the FBI and NASA", "the F B I and NASA"), ("an API with GPUs", "an A P I with G P U's"),
                   ("the U.S. economy", "the U S economy"), ("THIS IS GREAT", "THIS IS GREAT"),
                   ("HTML and JSON", "H T M L and JSON")],
    "url": [("see www.example.org/about-us", "see example dot org slash about dash us"),
            ("at github.com", "at github dot com"),
            ("https://example.com/a/very/long/path/that/goes/on", "example dot com"),
            ("mail john.doe+x@mail.example.co.uk", "mail john dot doe plus x at mail dot example dot co dot uk")],
    "social": [("follow @openai and #AIWeek", "follow at openai and hashtag AI Week"),
               ("we're #1 in C#", "we're number one in C sharp")],
    "symbols": [("R&D", "R and D"), ("x = y + 2", "x equals y plus two"), ("~10 items", "about ten items"),
                ("10x faster at 1920x1080", "ten times faster at nineteen twenty by one thousand eighty"),
                ("and/or w/ cheese", "and or with cheese")],
}


@pytest.mark.parametrize("text, expected", [c for cases in CASES.values() for c in cases],
                         ids=[f"{k}-{i}" for k, cases in CASES.items() for i in range(len(cases))])
def test_english(text: str, expected: str) -> None:
    assert said(text) == expected


def test_day_month_order_option() -> None:
    assert said("on 04/05/2026", FrontOptions(date_order=DateOrder.DMY)) == \
        "on May fourth, twenty twenty-six"
    assert said("on 04/05/2026") == "on April fifth, twenty twenty-six"


def test_number_words() -> None:
    assert cardinal(0) == "zero" and cardinal(1_000_001) == "one million one"
    assert ordinal(12) == "twelfth" and ordinal(40) == "fortieth" and ordinal(1000) == "one thousandth"
    assert year(1905) == "nineteen oh five" and year(2000) == "two thousand" and year(1900) == "nineteen hundred"


def test_normalize_off_leaves_numbers() -> None:
    opts = FrontOptions(normalize=False)
    assert said("It costs $1,234.56 on 12/05/2026, e.g. at 3:30 PM.", opts) == \
        "It costs $1,234.56 on 12/05/2026, e.g. at 3:30 PM."


def test_language_without_rules_passes_through() -> None:
    assert normalizer_for("xx") is None
    assert said("Es kostet 5 € am 12.05.", FrontOptions(language="xx")) == "Es kostet 5 € am 12.05."


def test_register_language() -> None:
    class Shout:
        def rewrites(self, text: str, options: FrontOptions) -> list[Rewrite]:
            return [Rewrite(i, i + 1, "eins") for i, c in enumerate(text) if c == "1"]

        def say_as(self, interpret_as: str, text: str, fmt: str | None,
                   options: FrontOptions) -> str | None:
            return None

        def sticky(self, word: str) -> bool:
            return False

    register_language("zz", Shout())
    assert normalizer_for("zz-CH") is not None
    assert said("ich 1 du", FrontOptions(language="zz")) == "ich eins du"
    assert normalizer_for("en-US") is normalizer_for("en")
