"""Kokoro's pieces that need no model run: batches over 510 phonemes, voices files and blends,
languages, word timings from durations, window planning, the files a setting names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adapters.errors import BackendUnavailable, BadRequest
from adapters.kokoro import KokoroAdapter
from adapters.kokoro.batches import MAX_PHONEMES, split_phonemes
from adapters.kokoro.files import locate
from adapters.kokoro.phonemes import resolve_language
from adapters.kokoro.timing import batch_timings, plan_words, spoken_words
from adapters.kokoro.voices import (
    STYLE_SHAPE,
    VoiceTable,
    blend_id,
    language_of,
    load_voices,
    parse_blend,
)
from adapters.kokoro.windows import (
    FIRST_WINDOW_FRAMES,
    MAX_WINDOW_FRAMES,
    PAD_FRAMES,
    WINDOWS,
    Rate,
    measure_rate,
)
from server.config import Settings

# -- batches


def test_a_batch_within_the_limit_is_left_whole() -> None:
    assert split_phonemes("ðə kwˈɪk bɹˈaʊn fˈɑːks.") == ["ðə kwˈɪk bɹˈaʊn fˈɑːks."]
    assert split_phonemes("   ") == []


def test_long_phonemes_are_cut_after_sentences_first_and_balanced() -> None:
    sentence = "ðɪs ɪz ɐ sˈɛntəns ðæt ɡˈoʊz ˈɑːn fɔːɹ ɐ wˈaɪl, wɪð ɐ klˈɔːz ɪn ðə mˈɪdəl."
    text = " ".join([sentence] * 17)  # ~1300 phonemes: three batches of 6, 6 and 5
    batches = split_phonemes(text)
    assert len(batches) == 3
    assert all(len(b) <= MAX_PHONEMES for b in batches)
    assert " ".join(batches) == text  # nothing lost, nothing added
    assert all(b.endswith(".") for b in batches)  # cut after sentences, not inside them
    sizes = [len(b) for b in batches]
    assert max(sizes) - min(sizes) <= len(sentence) + 1  # balanced, not a short last batch


def test_a_sentence_too_long_is_cut_after_clauses_then_between_words() -> None:
    clause = "wˈʌn tˈuː θɹˈiː fˈoːɹ fˈaɪv sˈɪks sˈɛvən ˈeɪt nˈaɪn tˈɛn,"
    text = " ".join([clause] * 15)  # one sentence of ~900 phonemes
    batches = split_phonemes(text)
    assert len(batches) == 2 and " ".join(batches) == text
    assert batches[0].endswith(",")
    words = " ".join(["wˈʌn"] * 200)  # no punctuation at all: between words
    batches = split_phonemes(words)
    assert all(len(b) <= MAX_PHONEMES for b in batches) and " ".join(batches) == words
    assert all(not b.startswith(" ") and not b.endswith(" ") for b in batches)


def test_an_unbroken_run_is_cut_where_it_must_be() -> None:
    run = "a" * 1200
    batches = split_phonemes(run)
    assert "".join(batches) == run and all(len(b) <= MAX_PHONEMES for b in batches)


# -- voices


def _voices_file(path: Path, **tables: np.ndarray) -> Path:
    np.savez(path, **tables)
    return path


def test_a_voices_file_with_a_wrong_shape_is_a_clear_error(tmp_path: Path) -> None:
    good = np.zeros(STYLE_SHAPE, np.float32)
    path = _voices_file(tmp_path / "voices.npz", af_good=good,
                        af_bad=np.zeros((510, 256), np.float32))
    with pytest.raises(BackendUnavailable, match=r"af_bad.*\(510, 256\).*expected \(510, 1, 256\)"):
        load_voices(path)
    (tmp_path / "junk.bin").write_bytes(b"not a zip archive")
    with pytest.raises(BackendUnavailable, match="not a Kokoro voices archive"):
        load_voices(tmp_path / "junk.bin")


def test_blends_are_the_weighted_mean_of_the_tables(tmp_path: Path) -> None:
    a = np.full(STYLE_SHAPE, 1.0, np.float32)
    b = np.full(STYLE_SHAPE, 4.0, np.float32)
    table = VoiceTable(load_voices(_voices_file(tmp_path / "v.npz", af_a=a, jm_b=b)))
    assert np.allclose(table.style("af_a+jm_b").table, 2.5)
    assert np.allclose(table.style("af_a(2)+jm_b(1)").table, 2.0)
    assert table.style("af_a(2)+jm_b(1)").id == "af_a(2)+jm_b(1)"
    assert table.style("jm_b+af_a").language == "ja"  # a blend speaks its first part's language
    assert table.style("af_a").row(5).shape == (1, 256)
    with pytest.raises(BadRequest, match="unknown Kokoro voice 'nope'") as e:
        table.style("af_a+nope")
    assert e.value.field == "voice"
    for spec in ("af_a(0)+jm_b", "af_a(x)", "af_a++jm_b", "(2)"):
        with pytest.raises(BadRequest):
            table.style(spec)


def test_blend_spelling() -> None:
    assert parse_blend("jf_alpha(2)+jm_kumo(1)") == [("jf_alpha", 2.0), ("jm_kumo", 1.0)]
    assert parse_blend("jf_alpha + jm_kumo") == [("jf_alpha", 1.0), ("jm_kumo", 1.0)]
    assert blend_id(parse_blend("jf_alpha(0.5)+jm_kumo")) == "jf_alpha(0.5)+jm_kumo(1)"


def test_languages_come_from_the_voice_prefix() -> None:
    expected = {"af_heart": "en-US", "bm_george": "en-GB", "jf_alpha": "ja", "zf_xiaoxiao": "zh",
                "ef_dora": "es", "ff_siwis": "fr", "hf_alpha": "hi", "if_sara": "it",
                "pf_dora": "pt-BR"}
    assert {v: language_of(v) for v in expected} == expected


def test_the_language_to_read_in() -> None:
    assert resolve_language(None, "en-GB", "Hello.") == "en-GB"
    assert resolve_language(None, "ja", "Hello there.") == "en-US"  # no kana: English
    assert resolve_language(None, "ja", "こんにちは") == "ja"
    assert resolve_language("en", "en-GB", "Hello.") == "en-GB"
    assert resolve_language("en", "ja", "Hello.") == "en-US"
    assert resolve_language("ja-JP", "en-US", "こんにちは") == "ja"
    assert resolve_language("pt", "en-US", "Olá") == "pt-BR"
    with pytest.raises(BadRequest) as e:
        resolve_language("klingon", "en-US", "Qapla'")
    assert e.value.field == "language"


# -- files


def test_a_missing_model_path_is_backend_unavailable(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match="KOKORO_MODEL .*missing.onnx does not exist"):
        locate(str(tmp_path / "missing.onnx"), None)
    with pytest.raises(BackendUnavailable, match="KOKORO_VOICES .*nope.bin does not exist"):
        locate(None, str(tmp_path / "nope.bin"))


async def test_the_adapter_reports_a_missing_model_and_refuses_to_speak(tmp_path: Path) -> None:
    from adapters.base import TTSInput

    adapter = KokoroAdapter.from_options(
        Settings(kokoro_model=str(tmp_path / "missing.onnx")).model_dump())
    health = await adapter.health()
    assert not health.ready and "does not exist" in (health.reason or "")
    with pytest.raises(BackendUnavailable):
        async for _ in adapter.synth_stream(TTSInput("Hello.")):
            pass


# -- timings


def test_spoken_words_skip_spaces_and_punctuation() -> None:
    assert spoken_words("ab c, d.") == [[0, 1], [3], [6]]
    assert spoken_words("— ab") == [[2, 3]]


def test_word_timings_from_durations() -> None:
    phonemes = "ab c."  # tokens: pad a b ' ' c . pad
    frames = np.array([2, 1, 3, 1, 2, 4, 5])
    plan = plan_words(["Ab", "c."], [1, 1], [phonemes])
    assert plan is not None
    words = batch_timings(plan.batches[0], phonemes, frames, offset_samples=600, rate_hz=24000)
    assert words is not None
    ms = 600 / 24  # one frame
    assert [(w.text, w.start_ms, w.end_ms) for w in words] == [
        ("Ab", 25 + 2 * ms, 25 + 6 * ms), ("c.", 25 + 7 * ms, 25 + 9 * ms)]
    assert batch_timings(plan.batches[0], phonemes, frames[:-1], offset_samples=0,
                         rate_hz=24000) is None  # durations that do not match
    assert plan_words(["one"], [1], [phonemes]) is None  # counts that disagree


def test_words_are_assigned_to_batches() -> None:
    plan = plan_words(["a", "b", "&", "c"], [1, 1, 0, 1], ["a b.", "c."])
    assert plan is not None
    assert plan.batches == [[("a", 1), ("b", 1)], [("&", 0), ("c", 1)]]


# -- windows


@pytest.mark.parametrize("total", [1, 12, 20, 21, 60, 331, 2000])
def test_windows_cover_a_batch_once_small_first_then_growing(total: int) -> None:
    ends, start, index = [], 0, 0
    while start < total:
        end = WINDOWS.next_end(start, total, index, 0.0, 10.0)
        assert start < end <= total
        ends.append(end)
        start, index = end, index + 1
    sizes = list(np.diff([0, *ends]))
    if total > FIRST_WINDOW_FRAMES + 2 * PAD_FRAMES:
        assert sizes[0] == FIRST_WINDOW_FRAMES
    assert all(s <= MAX_WINDOW_FRAMES + 2 * PAD_FRAMES for s in sizes)
    assert sizes[:-1] == sorted(sizes[:-1])


def test_a_listeners_lead_buys_a_larger_window() -> None:
    assert WINDOWS.next_end(0, 600, 0, None, None) == FIRST_WINDOW_FRAMES
    assert WINDOWS.next_end(12, 600, 1, None, None) == 12 + 2 * FIRST_WINDOW_FRAMES
    assert WINDOWS.next_end(0, 600, 0, 1000.0, 10.0) == 50  # half of 1 s at 10 ms a frame
    assert WINDOWS.next_end(0, 600, 0, 1000.0, 10.0, spent_ms=200.0) == 30
    assert WINDOWS.next_end(0, 600, 0, 60_000.0, 10.0) == MAX_WINDOW_FRAMES


def test_rates_are_measured_from_two_shapes() -> None:
    assert measure_rate((1, 512, 20), 10, (1, 512, 60), 30) == Rate(2, 2, 0)
    assert measure_rate((1, 6020, 1), 10, (1, 18020, 1), 30) == Rate(1, 600, 20)
    assert measure_rate((1, 5, 5), 10, (1, 6, 6), 30) is None  # two axes changed
    x = np.arange(6020).reshape(1, 6020, 1)
    assert Rate(1, 600, 20).slice(x, 2, 4).reshape(-1).tolist() == list(range(1200, 2420))


def test_calibration_utterances_grow_with_the_style_row() -> None:
    from adapters.kokoro.engine import CALIBRATION_PHONEMES, CALIBRATION_ROWS, calibration_phonemes

    lengths = [len(calibration_phonemes(row)) for row in CALIBRATION_ROWS]
    assert lengths == sorted(lengths) and lengths[0] >= 10
    assert all(CALIBRATION_PHONEMES.startswith(calibration_phonemes(r)) for r in CALIBRATION_ROWS)
    assert calibration_phonemes(63).count(" ") < calibration_phonemes(255).count(" ")
    assert len(calibration_phonemes(63)) <= 64
