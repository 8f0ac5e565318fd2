"""The test recognizer: it hears Piper's speech, tells a different sentence and noise apart,
keeps its cache sound, and its word error rate normalizes as documented."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dsp.resample import resample
from tests import piper_speech, recognizer
from tests.wer import normalize, wer, word_edits

SPOKEN = ("The library opens at nine in the morning. "
          "Please return your books within 14 days. "
          "Late returns cost 2 dollars a week.")
OTHER = "Green parrots sleep quietly under the old wooden bridge."


@functools.cache
def _piper(text: str) -> tuple[bytes, int]:
    rate = piper_speech.piper_rate_hz()
    return b"".join(piper_speech.sentences(text, rate)), rate


# --- the recognizer on real speech -------------------------------------------------------------

@pytest.mark.parametrize(("rate_hz", "language"), [
    (None, "en"),  # None: Piper's own 22050 Hz
    (8000, "en"),
    (48000, None),  # the model detects the language
])
def test_piper_speech_is_recognized_at_any_rate(rate_hz: int | None, language: str | None) -> None:
    pcm, rate = _piper(SPOKEN)
    if rate_hz:
        pcm, rate = resample(pcm, rate, rate_hz), rate_hz
    heard = recognizer.transcribe_with_confidence(pcm, rate, language)
    assert wer(SPOKEN, heard.text) <= 0.1, heard.text
    assert heard.segments and heard.min_avg_log_prob > -0.6, heard


def test_recognizer_is_deterministic() -> None:
    pcm, rate = _piper(OTHER)
    assert recognizer.transcribe(pcm, rate) == recognizer.transcribe(pcm, rate)


def test_a_different_sentence_scores_badly() -> None:
    pcm, rate = _piper(OTHER)
    heard = recognizer.transcribe(pcm, rate)
    assert wer(SPOKEN, heard) >= 0.5, heard


def test_white_noise_scores_badly() -> None:
    rng = np.random.default_rng(7)
    noise = (rng.standard_normal(3 * 16000) * 0.2 * 32767).clip(-32768, 32767).astype("<i2")
    heard = recognizer.transcribe(noise.tobytes(), 16000)
    assert wer(SPOKEN, heard) >= 0.5, heard


def test_bad_pcm_is_refused() -> None:
    rec = recognizer.recognizer()
    with pytest.raises(ValueError):
        rec.transcribe(b"\x00\x00\x00", 16000)
    with pytest.raises(ValueError):
        rec.transcribe(b"\x00\x00", 0)
    assert rec.transcribe_with_confidence(b"", 16000) == recognizer.Transcript("", ())


# --- the model cache ---------------------------------------------------------------------------

def test_two_processes_join_one_verified_model(tmp_path: Path) -> None:
    env = {**os.environ, "MORPHEUS_ASR_CACHE": str(tmp_path),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    code = "from tests.recognizer import model_dir; print(model_dir())"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    try:
        outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0]
    folder = Path(outs[0])
    assert outs[1] == outs[0] and folder.parent == tmp_path
    assert recognizer._verified(folder)
    assert sorted(f.name for f in folder.iterdir()) == [
        "config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]
    assert not list(tmp_path.glob(".*tmp-*"))  # no half-written folder left behind


def test_a_damaged_cache_is_joined_again(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MORPHEUS_ASR_CACHE", str(tmp_path))
    folder = recognizer.model_dir()
    leftover = tmp_path / f".{folder.name}.tmp-999999"  # as a process killed mid-join leaves
    leftover.mkdir()
    (leftover / "model.bin").write_bytes(b"half")
    with open(folder / "model.bin", "r+b") as f:
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert not recognizer._verified(folder)
    assert recognizer.model_dir() == folder
    assert recognizer._verified(folder)
    assert not leftover.exists()


def test_parts_that_do_not_match_the_pin_are_refused(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MORPHEUS_ASR_CACHE", str(tmp_path))
    monkeypatch.setattr(recognizer, "MODEL_SHA256", "0" * 64)
    with pytest.raises(recognizer.AsrModelError):
        recognizer.model_dir()
    assert [p.name for p in tmp_path.iterdir()] == [f"whisper-base-{'0' * 16}.lock"]


def test_cache_root_rule(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MORPHEUS_ASR_CACHE", str(tmp_path / "x"))
    assert recognizer.cache_root() == tmp_path / "x"
    monkeypatch.delenv("MORPHEUS_ASR_CACHE")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    assert recognizer.cache_root() == tmp_path / "morpheus-asr"
    monkeypatch.setattr(sys, "base_prefix", str(tmp_path))  # not a venv
    assert recognizer.cache_root() == Path.home() / ".cache" / "morpheus-asr"


# --- the word error rate -----------------------------------------------------------------------

@pytest.mark.parametrize(("written", "spoken"), [
    ("It costs 12 euros.", "it costs twelve euros"),
    ("50% off", "fifty percent off"),
    ("$12.50", "twelve dollars and fifty cents"),
    ("$1", "one dollar"),
    ("the 21st floor", "the twenty-first floor"),
    ("pi is 3.14", "pi is three point one four"),
    ("1,000 people", "one thousand people"),
    ("room 105", "room one hundred five"),
    ("at 3:30", "at three thirty"),
    ("Don\u2019t STOP, Tom & Jerry!", "dont stop tom and jerry"),
])
def test_written_and_spoken_forms_match(written: str, spoken: str) -> None:
    assert normalize(written) == normalize(spoken)
    assert wer(written, spoken) == 0.0


def test_normalize_spells_and_strips() -> None:
    assert normalize("Hello, World! It's 7 o'clock.") == "hello world its seven oclock"
    assert normalize("  twenty-one\n") == "twenty one"


def test_wer_counts_edits_over_reference_words() -> None:
    assert wer("a b c d", "a x c d") == 0.25  # one substitution
    assert wer("a b c d", "a c d") == 0.25  # one deletion
    assert wer("a b", "a b c d") == 1.0  # two insertions: can pass 1.0 with more
    assert wer("a b", "a b c d e") == 1.5
    assert wer("one two three", "1 2 3") == 0.0
    assert wer("", "") == 0.0 and wer("", "words") == 1.0 and wer("a", "") == 1.0
    assert word_edits(["kitten"], ["sitting"]) == 1  # words, not letters
    assert word_edits("a b c".split(), "c b a".split()) == 2
