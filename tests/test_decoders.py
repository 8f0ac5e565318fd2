"""Incremental decoders (dsp/decoders.py) and the WAV reader (dsp/wav.py): audio fed in
arbitrary pieces decodes to the same samples as the whole, at the right rate and length."""

from __future__ import annotations

import io
import struct
import wave

import numpy as np
import pytest

from dsp.decoders import DecodeError, format_of, make_decoder, rate_param
from dsp.encoders import make_encoder
from dsp.wav import WavReader, wav_header

RATE = 24_000


def tone(seconds: float = 1.0, rate: int = RATE, freq: float = 440.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def feed_in_pieces(fmt: str, data: bytes, piece: int) -> tuple[bytes, int | None]:
    dec = make_decoder(fmt)
    out = b"".join(dec.feed(data[i : i + piece]) for i in range(0, len(data), piece))
    return out + dec.flush(), dec.sample_rate_hz


def dominant_hz(pcm: bytes, rate: int) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[int(np.argmax(spectrum))])


@pytest.mark.parametrize("fmt", ["mp3", "aac", "flac", "opus", "wav"])
@pytest.mark.parametrize("piece", [1, 333, 1 << 20])
def test_encoded_audio_decodes_in_any_pieces(fmt: str, piece: int) -> None:
    if piece == 1 and fmt in ("mp3", "aac", "flac", "opus"):
        piece = 7  # byte by byte is slow through Python; 7 still cuts every frame
    src = tone(1.0)
    enc = make_encoder(fmt, RATE, streaming=True)
    data = enc.encode(src) + enc.flush()
    pcm, rate = feed_in_pieces(fmt, data, piece)
    expected_rate = 48_000 if fmt == "opus" else RATE
    assert rate == expected_rate
    seconds = len(pcm) / 2 / expected_rate
    assert 0.98 <= seconds <= 1.08, seconds  # codec priming/padding adds a few ms at most
    assert abs(dominant_hz(pcm, expected_rate) - 440) < 5
    if fmt in ("wav", "flac"):  # lossless: the very same samples
        assert pcm == src


def test_pcm_passes_through_and_holds_an_odd_byte() -> None:
    dec = make_decoder("pcm", 16_000)
    assert dec.feed(b"\x01\x02\x03") == b"\x01\x02"
    assert dec.feed(b"\x04") == b"\x03\x04"
    assert dec.sample_rate_hz == 16_000


def test_garbage_is_a_decode_error_not_silence() -> None:
    rng = np.random.default_rng(1)
    junk = rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    for fmt in ("mp3", "aac", "flac", "opus", "wav"):
        dec = make_decoder(fmt)
        with pytest.raises(DecodeError):
            for i in range(0, len(junk), 1000):
                dec.feed(junk[i : i + 1000])
            dec.flush()


def test_content_types_map_to_formats() -> None:
    assert format_of("audio/mpeg") == "mp3"
    assert format_of("audio/L16; rate=22050") == "pcm"
    assert rate_param("audio/L16; rate=22050") == 22050
    assert rate_param("audio/pcm") is None
    assert format_of("text/html; charset=utf-8") is None
    assert format_of(None) is None


# -- WAV reader


def stdlib_wav(pcm: bytes, rate: int, channels: int = 1, width: int = 2) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def test_zero_frame_header_then_pcm_as_xtts_sends_it() -> None:
    header = stdlib_wav(b"", RATE)  # what both XTTS servers send first: 44 bytes, 0 frames
    assert len(header) == 44 and struct.unpack("<I", header[40:44])[0] == 0
    src = tone(0.2)
    reader = WavReader()
    out = b"".join(reader.feed(b) for b in (header[:10], header[10:], src[:101], src[101:]))
    assert out == src and reader.format is not None and reader.format.sample_rate_hz == RATE


def test_true_sizes_stop_at_the_data_end_and_skip_other_chunks() -> None:
    src = tone(0.1, 22_050)
    body = wav_header(22_050, len(src)) + src
    # a LIST chunk before the data and junk after it, as some writers add
    riff, rest = body[:12], body[12:]
    fmt_chunk, data_chunk = rest[:24], rest[24:]
    listed = riff + fmt_chunk + b"LIST" + struct.pack("<I", 5) + b"abcde\x00" + data_chunk
    reader = WavReader()
    out = reader.feed(listed + b"JUNKJUNK")
    assert out == src and reader.format is not None and reader.format.sample_rate_hz == 22_050


def test_streaming_sizes_mean_read_to_the_end() -> None:
    src = tone(0.1)
    reader = WavReader()
    assert reader.feed(wav_header(RATE) + src) == src  # 0xFFFFFFFF sizes


@pytest.mark.parametrize("width", [1, 3, 4])
def test_other_widths_and_stereo_become_s16_mono(width: int) -> None:
    x = np.sin(2 * np.pi * 300 * np.arange(2400) / RATE) * 0.5
    full = (1 << (8 * width - 1)) - 1
    if width == 1:
        raw = (np.rint(x * 127) + 128).astype(np.uint8).tobytes()
    elif width == 3:
        v = np.rint(x * full).astype(np.int32)
        raw = b"".join(int(s).to_bytes(3, "little", signed=True) for s in v)
    else:
        raw = np.rint(x * full).astype("<i4").tobytes()
    stereo = b"".join(raw[i : i + width] * 2 for i in range(0, len(raw), width))
    out = WavReader().feed(stdlib_wav(stereo, RATE, channels=2, width=width))
    y = np.frombuffer(out, dtype="<i2") / 32768.0
    assert y.size == x.size
    assert np.max(np.abs(y - x)) < (0.02 if width == 1 else 1e-3)


def test_not_a_wav_raises() -> None:
    with pytest.raises(ValueError):
        WavReader().feed(b"<html><body>oops</body></html>")
    with pytest.raises(ValueError):
        WavReader().feed(b"RIFF\x00\x00\x00\x00WAVEdata\x00\x00\x00\x00")  # data before fmt
