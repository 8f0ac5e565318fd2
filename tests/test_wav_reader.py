"""dsp/wav_reader: WAV headers read as bytes arrive, and PCM converted to s16 mono, byte-exact."""

from __future__ import annotations

import io
import struct
import wave

import numpy as np
import pytest

from dsp.wav import wav_header
from dsp.wav_reader import NotWav, WavFormat, parse_wav_header, to_s16_mono


def header_with(fmt_body: bytes, data_size: int, extra: bytes = b"") -> bytes:
    """RIFF/WAVE, a fmt chunk with `fmt_body`, `extra` chunks, then a data chunk header."""
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_body)) + fmt_body + extra
    return b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + body + b"data" + struct.pack("<I", data_size)


def test_needs_more_bytes_until_the_data_chunk_then_says_where_pcm_starts() -> None:
    hdr = wav_header(22050, 1000)
    for n in range(len(hdr)):
        assert parse_wav_header(hdr[:n]) is None
    assert parse_wav_header(hdr) == WavFormat(22050, 1, 2, False, data_offset=44, data_bytes=1000)


@pytest.mark.parametrize("size", [0, 0xFFFFFFFF, 0x7FFFF000])  # streaming writers, espeak-ng
def test_placeholder_sizes_mean_read_to_the_end(size: int) -> None:
    hdr = wav_header(16000)[:40] + struct.pack("<I", size)
    fmt = parse_wav_header(hdr)
    assert fmt is not None and fmt.data_bytes is None and fmt.sample_rate_hz == 16000


def test_chunks_before_data_are_skipped_and_python_wave_files_parse() -> None:
    fmt_body = struct.pack("<HHIIHH", 1, 2, 44100, 44100 * 4, 4, 16)
    extra = b"LIST" + struct.pack("<I", 5) + b"abcde" + b"\x00"  # odd size: one pad byte
    fmt = parse_wav_header(header_with(fmt_body, 400, extra))
    assert fmt == WavFormat(44100, 2, 2, False, data_offset=12 + 24 + 14 + 8, data_bytes=400)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x00" * 10)
    data = out.getvalue()
    fmt = parse_wav_header(data)
    assert fmt is not None and data[fmt.data_offset:] == b"\x01\x00" * 10


def test_extensible_and_float_formats() -> None:
    ext = struct.pack("<HHIIHHHHI", 0xFFFE, 1, 48000, 48000 * 3, 3, 24, 22, 24, 4) + \
        struct.pack("<H", 1) + b"\x00" * 14  # sub-format GUID: PCM
    fmt = parse_wav_header(header_with(ext, 0))
    assert fmt is not None and (fmt.sample_width_bytes, fmt.is_float) == (3, False)
    flt = struct.pack("<HHIIHH", 3, 1, 24000, 96000, 4, 32)
    fmt = parse_wav_header(header_with(flt, 0))
    assert fmt is not None and fmt.is_float


@pytest.mark.parametrize("data", [b"HTTP/1.1 200 OK\r\n", b"RIFX", b"RIFF\x00\x00\x00\x00WAVX"])
def test_not_wav(data: bytes) -> None:
    with pytest.raises(NotWav):
        parse_wav_header(data)


def test_mu_law_and_data_before_fmt_are_refused() -> None:
    with pytest.raises(NotWav, match="format 7"):
        parse_wav_header(header_with(struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8), 0))
    with pytest.raises(NotWav, match="before its fmt"):
        parse_wav_header(b"RIFF\xff\xff\xff\xffWAVEdata\x00\x00\x00\x00")


def test_conversions_to_s16_mono_are_exact() -> None:
    def fmt(channels: int, width: int, is_float: bool = False) -> WavFormat:
        return WavFormat(16000, channels, width, is_float, 44, None)

    s16 = np.array([0, 1000, -1000, 32767, -32768], "<i2")
    assert to_s16_mono(s16.tobytes(), fmt(1, 2)) == s16.tobytes()
    stereo = np.array([[100, 300], [-50, -150]], "<i2")
    assert to_s16_mono(stereo.tobytes(), fmt(2, 2)) == np.array([200, -100], "<i2").tobytes()
    u8 = np.array([128, 255, 0], np.uint8)
    assert to_s16_mono(u8.tobytes(), fmt(1, 1)) == np.array([0, 127 << 8, -32768], "<i2").tobytes()
    s24 = b"\x00\x10\x00" + b"\x00\x00\x80"  # 0x001000 and the most negative 24-bit sample
    assert to_s16_mono(s24, fmt(1, 3)) == np.array([0x10, -32768], "<i2").tobytes()
    s32 = np.array([1 << 16, -(1 << 31)], "<i4")
    assert to_s16_mono(s32.tobytes(), fmt(1, 4)) == np.array([1, -32768], "<i2").tobytes()
    f32 = np.array([0.5, -1.5], "<f4")  # out of range clips
    assert to_s16_mono(f32.tobytes(), fmt(1, 4, True)) == np.array([16384, -32767], "<i2").tobytes()
