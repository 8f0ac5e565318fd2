"""Byte- and millisecond-exact pieces of the ElevenLabs face: output formats and alignment."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from adapters.errors import BadRequest
from server.core.events import WordMark
from server.faces.elevenlabs.alignment import CharAligner, MsAlignment, seconds_alignment
from server.faces.elevenlabs.formats import parse_output_format, supported_formats
from tests.audio_check import decode, read_wave

SDK_FORMATS = ["alaw_8000", "mp3_22050_32", "mp3_24000_48", "mp3_44100_32", "mp3_44100_64",
               "mp3_44100_96", "mp3_44100_128", "mp3_44100_192", "opus_48000_32",
               "opus_48000_64", "opus_48000_96", "opus_48000_128", "opus_48000_192",
               "pcm_8000", "pcm_16000", "pcm_22050", "pcm_24000", "pcm_32000", "pcm_44100",
               "pcm_48000", "ulaw_8000", "wav_8000", "wav_16000", "wav_22050", "wav_24000",
               "wav_32000", "wav_44100", "wav_48000"]


def test_every_format_the_sdk_names_is_supported() -> None:
    assert set(SDK_FORMATS) <= set(supported_formats())
    for name in SDK_FORMATS:
        fmt = parse_output_format(name)
        assert fmt.name == name and fmt.sample_rate_hz == int(name.split("_")[1])
    assert parse_output_format(None).name == "mp3_44100_128"


@pytest.mark.parametrize("name", ["pcm", "pcm_11025", "mp3_44100", "mp3_24000_320", "opus_24000_64",
                                  "ulaw_16000", "wav_24000_16", "flac_44100", "pcm_-1",
                                  "pcm_24000_", "", "_24000"])
def test_unknown_formats_are_422_naming_output_format(name: str) -> None:
    with pytest.raises(BadRequest) as e:
        parse_output_format(name or "x")
    assert e.value.status == 422 and e.value.field == "output_format"


def tone(ms: int, rate: int = 24000) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (0.3 * 32767 * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes()


def test_pcm_is_resampled_exactly_in_length() -> None:
    enc = parse_output_format("pcm_16000").encoder(streaming=True)
    out = b"".join(enc.encode(tone(100)) for _ in range(10)) + enc.flush()
    assert len(out) == 16000 * 2  # one second at 16 kHz, s16


def test_wav_whole_has_true_sizes_and_streamed_has_open_sizes() -> None:
    enc = parse_output_format("wav_22050").encoder(streaming=False)
    data = enc.encode(tone(500)) + enc.flush()
    rate, declared, frames = read_wave(data)
    assert rate == 22050 and declared == 11025 and len(frames) == 22050
    enc = parse_output_format("wav_22050").encoder(streaming=True)
    first = enc.encode(tone(100))
    assert first[:4] == b"RIFF" and struct.unpack("<I", first[40:44])[0] == 0xFFFFFFFF


@pytest.mark.parametrize("name, codec, rate", [("mp3_24000_48", "mp3", 24000),
                                               ("mp3_44100_192", "mp3", 44100),
                                               ("opus_48000_32", "opus", 48000)])
def test_lossy_formats_decode_at_their_rate(name: str, codec: str, rate: int) -> None:
    enc = parse_output_format(name).encoder(streaming=True)
    data = b"".join(enc.encode(tone(100)) for _ in range(10)) + enc.flush()
    d = decode(data)
    assert d.codec.startswith(codec) and d.sample_rate_hz == rate
    assert d.duration_s == pytest.approx(1.0, abs=0.06) and d.rms_dbfs > -20


def test_bit_rate_follows_the_format() -> None:
    sizes = {}
    for kbps in (32, 128):
        enc = parse_output_format(f"mp3_44100_{kbps}").encoder(streaming=True)
        sizes[kbps] = len(b"".join(enc.encode(tone(100)) for _ in range(20)) + enc.flush())
    assert sizes[128] == pytest.approx(sizes[32] * 4, rel=0.15)


def marks(*spec: tuple[str, float, float]) -> list[WordMark]:
    return [WordMark(t, s, e, True) for t, s, e in spec]


def test_words_spread_over_their_characters_and_gaps_go_to_the_spaces() -> None:
    aligner = CharAligner("Hi  you.")
    chars, normalized = aligner.words(marks(("Hi", 100, 200), ("you.", 300, 700)))
    assert "".join(c.char for c in chars) == "Hi  you."
    assert [(c.start_ms, c.end_ms) for c in chars] == [
        (100, 150), (150, 200), (200, 250), (250, 300), (300, 400), (400, 500), (500, 600),
        (600, 700)]
    assert "".join(c.char for c in normalized) == "Hi you."
    assert aligner.rest() == []


def test_leading_text_and_unsaid_words_take_the_gap() -> None:
    aligner = CharAligner("  ... ok, Wörld 42 x\u0000y")
    chars, _ = aligner.words(marks(("ok,", 50, 110), ("nope", 120, 130), ("42", 300, 400)))
    chars += aligner.words(marks(("xy", 400, 500)))[0]  # said without the NUL: not verbatim
    chars += aligner.rest(600)
    assert "".join(c.char for c in chars) == "  ... ok, Wörld 42 x\u0000y"
    starts = [c.start_ms for c in chars]
    assert starts == sorted(starts) and chars[0].start_ms == 0 and chars[-1].end_ms == 600
    assert chars[6].start_ms == 50  # "o" of "ok,": where the engine said it


def test_marks_that_go_back_in_time_are_clamped() -> None:
    aligner = CharAligner("a b")
    chars, _ = aligner.words(marks(("a", 100, 200), ("b", 150, 180)))
    assert [c.start_ms for c in chars] == [100, 200, 200]
    assert all(c.end_ms >= c.start_ms for c in chars)


def test_http_alignment_is_in_seconds() -> None:
    aligner = CharAligner("ab")
    out = seconds_alignment(aligner.words(marks(("ab", 0, 1234)))[0])
    assert out == {"characters": ["a", "b"], "character_start_times_seconds": [0.0, 0.617],
                   "character_end_times_seconds": [0.617, 1.234]}
    assert seconds_alignment([]) is None


def test_websocket_alignment_adds_up_without_drift() -> None:
    aligner = CharAligner("one two three ")
    ms = MsAlignment()
    total = 0
    first = ms.render(aligner.words(marks(("one", 0.4, 333.3)))[0])
    second = ms.render(aligner.words(marks(("two", 400.6, 733.3)))[0])
    third = ms.render(aligner.words(marks(("three", 800.2, 1333.4)))[0] + aligner.rest(1400))
    for msg in (first, second, third):
        assert msg is not None
        assert all(isinstance(x, int) for x in msg["charStartTimesMs"] + msg["charDurationsMs"])
        total += msg["charStartTimesMs"][-1] + msg["charDurationsMs"][-1]
    assert total == 1400  # what pipecat's running clock ends at: the audio's end, exactly
    assert second["chars"][0] == " " and second["charStartTimesMs"][0] == 0  # contiguous
