"""WAV headers (byte-exact, readable by wave and ffprobe) and the PCM level helpers."""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from dsp.levels import (
    SILENCE_DBFS,
    align_samples,
    float_to_pcm,
    pcm_to_float,
    peak_dbfs,
    rms_dbfs,
)
from dsp.wav import STREAMING_SIZE, wav_file, wav_header

# written out by hand from the RIFF/WAVE spec, not produced by the code under test
HEADER_24K_1000 = bytes.fromhex(
    "52494646" "0c040000" "57415645"  # "RIFF", 36 + 1000, "WAVE"
    "666d7420" "10000000" "0100" "0100"  # "fmt ", 16, PCM, mono
    "c05d0000" "80bb0000" "0200" "1000"  # 24000 Hz, 48000 B/s, align 2, 16 bit
    "64617461" "e8030000"  # "data", 1000
)  # fmt: skip
HEADER_48K_STEREO_STREAM = bytes.fromhex(
    "52494646" "ffffffff" "57415645" "666d7420" "10000000" "0100" "0200"
    "80bb0000" "00ee0200" "0400" "1000" "64617461" "ffffffff"
)  # fmt: skip


def test_headers_are_byte_exact() -> None:
    assert wav_header(24000, 1000) == HEADER_24K_1000
    assert wav_header(48000, None, channels=2) == HEADER_48K_STEREO_STREAM
    streaming = wav_header(24000)
    assert len(streaming) == 44 and STREAMING_SIZE == 0xFFFFFFFF
    assert streaming[4:8] == streaming[40:44] == b"\xff\xff\xff\xff"
    assert streaming[8:40] == HEADER_24K_1000[8:40]


def test_wav_file_reads_back_with_wave() -> None:
    pcm = float_to_pcm(0.5 * np.sin(np.arange(2400) / 7.0))
    with wave.open(io.BytesIO(wav_file(pcm, 24000))) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 24000)
        assert w.getnframes() == 2400
        assert w.readframes(2400) == pcm
    odd = wav_file(b"\x01\x02\x03", 16000)  # odd data gets a pad byte; the size stays true
    assert len(odd) == 48 and odd[40:44] == (3).to_bytes(4, "little")
    assert odd[4:8] == (40).to_bytes(4, "little")


def test_bad_header_arguments() -> None:
    for args in ((0, 10), (24000, -1), (24000, 0x1_0000_0000)):
        with pytest.raises(ValueError):
            wav_header(*args)
    with pytest.raises(ValueError):
        wav_header(24000, 10, bits=12)


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe (Debian ffmpeg) not installed")
def test_ffprobe_reads_file_and_streaming_forms(tmp_path: Path) -> None:
    pcm = float_to_pcm(0.3 * np.sin(2 * np.pi * 440 * np.arange(24000) / 24000))
    for name, data in (("file.wav", wav_file(pcm, 24000)), ("stream.wav", wav_header(24000) + pcm)):
        path = tmp_path / name
        path.write_bytes(data)
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", str(path)],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        stream = json.loads(probe.stdout)["streams"][0]
        assert stream["codec_name"] == "pcm_s16le" and stream["sample_rate"] == "24000"
        assert stream["channels"] == 1
        decoded = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-"],
            capture_output=True, timeout=30, check=True,
        )  # fmt: skip
        assert decoded.stdout == pcm


def test_levels() -> None:
    assert rms_dbfs(b"") == SILENCE_DBFS and peak_dbfs(b"\x00\x00" * 100) == SILENCE_DBFS
    full_square = np.tile([32767, -32768], 500).astype("<i2").tobytes()
    assert abs(rms_dbfs(full_square)) < 0.01 and abs(peak_dbfs(full_square)) < 0.01
    sine = float_to_pcm(0.5 * np.sin(2 * np.pi * np.arange(24000) * 100 / 24000))
    assert abs(rms_dbfs(sine) - 20 * math.log10(0.5 / math.sqrt(2))) < 0.01  # about -9.03
    assert abs(peak_dbfs(sine) - 20 * math.log10(0.5)) < 0.01


def test_float_pcm_round_trip_and_clipping() -> None:
    ints = np.array([-32768, -1, 0, 1, 12345, 32767], dtype="<i2")
    assert float_to_pcm(pcm_to_float(ints.tobytes())) == ints.tobytes()
    clipped = np.frombuffer(float_to_pcm([-2.0, 1.5, 0.5, 1 / 65536 * 0.9]), dtype="<i2")
    assert clipped.tolist() == [-32768, 32767, 16384, 0]
    assert pcm_to_float(b"\x00\x40\x01").tolist() == [0.5]  # a trailing odd byte is ignored


def test_align_samples() -> None:
    pcm = b"abcdef"
    assert align_samples(b"", pcm)[0] is pcm  # no copy when nothing is carried
    assert align_samples(b"", b"abc") == (b"ab", b"c")
    assert align_samples(b"c", b"def") == (b"cdef", b"")
    assert align_samples(b"c", b"de") == (b"cd", b"e")
