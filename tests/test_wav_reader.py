"""dsp.wav.WavReader on the headers engines really write: streaming placeholders (espeak-ng's
included), chunks before the data, extensible and float formats, and what is not PCM WAV."""

from __future__ import annotations

import io
import struct
import wave

import numpy as np
import pytest

from dsp.wav import WavReader, wav_header


def header_with(fmt_body: bytes, data_size: int, extra: bytes = b"") -> bytes:
    """RIFF/WAVE, a fmt chunk with `fmt_body`, `extra` chunks, then a data chunk header."""
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_body)) + fmt_body + extra
    return b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + body + b"data" + struct.pack("<I", data_size)


def test_bytes_one_at_a_time_give_the_same_pcm() -> None:
    pcm = np.arange(-500, 500, dtype="<i2").tobytes()
    data = wav_header(22050, len(pcm)) + pcm
    reader = WavReader()
    out = b"".join(reader.feed(data[i:i + 1]) for i in range(len(data)))
    assert out == pcm and reader.format is not None and reader.format.sample_rate_hz == 22050


@pytest.mark.parametrize("size", [0, 0xFFFFFFFF, 0x7FFFF000])  # streaming writers, espeak-ng
def test_placeholder_sizes_mean_read_to_the_end(size: int) -> None:
    header = wav_header(16000)[:40] + struct.pack("<I", size)
    reader = WavReader()
    assert reader.feed(header) == b""
    pcm = b"\x01\x00" * 40_000  # longer than any small "size" would allow
    assert reader.feed(pcm) == pcm


def test_a_true_size_is_honoured_and_trailing_chunks_ignored() -> None:
    pcm = b"\x02\x00" * 10
    reader = WavReader()
    assert reader.feed(wav_header(8000, len(pcm)) + pcm + b"LIST\x04\x00\x00\x00abcd") == pcm


def test_chunks_before_data_are_skipped_and_python_wave_files_parse() -> None:
    fmt_body = struct.pack("<HHIIHH", 1, 2, 44100, 44100 * 4, 4, 16)
    extra = b"LIST" + struct.pack("<I", 5) + b"abcde" + b"\x00"  # odd size: one pad byte
    stereo = np.array([[100, 300], [-50, -150]], "<i2").tobytes()
    reader = WavReader()
    out = reader.feed(header_with(fmt_body, 0, extra) + stereo)
    assert out == np.array([200, -100], "<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x00" * 10)
    assert WavReader().feed(buf.getvalue()) == b"\x01\x00" * 10


def test_extensible_24_bit_and_float() -> None:
    ext = struct.pack("<HHIIHHHHI", 0xFFFE, 1, 48000, 48000 * 3, 3, 24, 22, 24, 4) + \
        struct.pack("<H", 1) + b"\x00" * 14  # sub-format GUID: PCM
    s24 = b"\x00\x10\x00" + b"\x00\x00\x80"  # 0x001000 and the most negative 24-bit sample
    assert WavReader().feed(header_with(ext, 0) + s24) == np.array([0x10, -32768], "<i2").tobytes()
    flt = struct.pack("<HHIIHH", 3, 1, 24000, 96000, 4, 32)
    out = WavReader().feed(header_with(flt, 0) + np.array([0.5, -1.5], "<f4").tobytes())
    # out of range clips; float full scale is +-32767, as for every engine (dsp/pcm.py)
    assert out == np.array([16384, -32767], "<i2").tobytes()


@pytest.mark.parametrize("data", [b"HTTP/1.1 200 OK\r\n", b"RIFX" + b"\x00" * 8,
                                  b"RIFF\x00\x00\x00\x00WAVX"])
def test_not_wav(data: bytes) -> None:
    with pytest.raises(ValueError):
        WavReader().feed(data)


def test_mu_law_and_data_before_fmt_are_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        WavReader().feed(header_with(struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8), 0))
    with pytest.raises(ValueError, match="before its fmt"):
        WavReader().feed(b"RIFF\xff\xff\xff\xffWAVEdata\x00\x00\x00\x00")
