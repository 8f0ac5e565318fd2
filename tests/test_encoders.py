"""Encoders: one container per response, decodable, right duration, bytes before flush."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
from pathlib import Path

import av
import numpy as np
import pytest

from dsp.encoders import CONTENT_TYPES, FORMATS, make_encoder
from dsp.levels import float_to_pcm
from dsp.wav import wav_file, wav_header

RATE = 24000
CODECS = ("mp3", "opus", "flac", "aac")
# decoded duration tolerance: encoder delay and frame padding (mp3 ~48 ms, aac ~72 ms here)
TOLERANCE_S = {"wav": 0.001, "pcm": 0.001, "mp3": 0.1, "opus": 0.03, "flac": 0.001, "aac": 0.1}


def speech_like(seconds: float, seed: int = 0) -> bytes:
    """Voiced harmonics with a wandering pitch, syllable envelope, and noisy consonants."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE * seconds)) / RATE
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = np.clip(np.sin(2 * np.pi * 3.5 * t), 0, None) ** 0.5
    noise = rng.standard_normal(t.size) * (np.sin(2 * np.pi * 3.5 * t + 2) > 0.8)
    return float_to_pcm(0.25 * voiced * syllables + 0.05 * noise)


def encode_in_chunks(fmt: str, pcm: bytes, pieces: int, **kw: bool) -> tuple[bytes, bytes]:
    """(bytes returned before flush, everything) for pcm sent in `pieces` odd-sized parts."""
    encoder = make_encoder(fmt, RATE, **kw)
    bounds = np.linspace(0, len(pcm), pieces + 1).astype(int) | 1  # odd offsets: split samples
    bounds[0], bounds[-1] = 0, len(pcm)
    early = b"".join(encoder.encode(pcm[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True))
    return early, early + encoder.flush()


def decoded_seconds(data: bytes) -> tuple[float, int]:
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.rate, stream.rate


def test_formats_and_content_types() -> None:
    assert FORMATS == ("wav", "pcm", "mp3", "opus", "flac", "aac")
    assert CONTENT_TYPES["mp3"] == "audio/mpeg" and CONTENT_TYPES["opus"] == "audio/ogg"
    for fmt in FORMATS:
        assert make_encoder(fmt).content_type == CONTENT_TYPES[fmt]
    with pytest.raises(ValueError):
        make_encoder("vorbis")


@pytest.mark.parametrize("fmt", ("wav", "mp3", "opus", "flac", "aac"))
def test_chunked_encode_decodes_to_the_right_duration(fmt: str) -> None:
    pcm = speech_like(2.5)
    _, data = encode_in_chunks(fmt, pcm, 20)
    seconds, rate = decoded_seconds(data)
    assert abs(seconds - 2.5) <= TOLERANCE_S[fmt], seconds
    assert rate == (48000 if fmt == "opus" else RATE)


def test_one_container_per_response() -> None:
    pcm = speech_like(2.0, seed=1)
    _, ogg = encode_in_chunks("opus", pcm, 20)
    pages = [i for i in range(len(ogg)) if ogg.startswith(b"OggS", i)]
    assert len(pages) > 3 and sum(ogg[i + 5] & 0x02 for i in pages) == 2  # one BOS page
    _, flac = encode_in_chunks("flac", pcm, 20)
    assert flac.startswith(b"fLaC") and flac.count(b"fLaC") == 1
    _, wav = encode_in_chunks("wav", pcm, 20)
    assert wav == wav_header(RATE) + pcm  # one header with unknown sizes, then the PCM
    _, mp3 = encode_in_chunks("mp3", pcm, 20)
    with av.open(io.BytesIO(mp3)) as container:
        assert len(container.streams) == 1


def test_pcm_and_true_size_wav() -> None:
    pcm = speech_like(0.5)
    early, data = encode_in_chunks("pcm", pcm, 7)
    assert early == data == pcm
    encoder = make_encoder("wav", RATE, streaming=False)
    assert encoder.encode(pcm[:1001]) == b"" and encoder.encode(pcm[1001:]) == b""
    assert encoder.flush() == wav_file(pcm, RATE)
    assert make_encoder("wav").flush() == wav_header(RATE)  # no audio is still a valid WAV


@pytest.mark.parametrize("fmt", CODECS)
def test_bytes_stream_out_before_flush(fmt: str) -> None:
    pcm = speech_like(10.0, seed=2)
    encoder = make_encoder(fmt, RATE)
    piece = 2 * RATE // 5  # 200 ms per call
    outputs = [encoder.encode(pcm[i : i + 2 * piece]) for i in range(0, len(pcm), 2 * piece)]
    tail = encoder.flush()
    first = next(i for i, out in enumerate(outputs) if out)
    assert first <= 5, f"first bytes only after {first * 0.2:.1f} s of audio"
    early = sum(map(len, outputs))
    assert early >= 0.8 * (early + len(tail))
    assert sum(1 for out in outputs if out) >= len(outputs) // 2
    assert abs(decoded_seconds(b"".join(outputs) + tail)[0] - 10.0) <= TOLERANCE_S[fmt]
    with pytest.raises(RuntimeError):
        encoder.encode(pcm[:100])
    assert encoder.flush() == b""


def test_encoders_are_fast() -> None:
    pcm = speech_like(20.0, seed=3)
    for fmt in CODECS:
        # CPU time, not wall time: other processes on a shared CI box must not fail this
        start = time.process_time()
        encode_in_chunks(fmt, pcm, 100)
        elapsed = time.process_time() - start
        # measured here: 0.01 s (flac) to 0.2 s (aac, mp3) of CPU for these 20 s
        assert elapsed < 1.0, f"{fmt}: 20 s of audio took {elapsed:.2f} s of CPU"


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe (Debian ffmpeg) not installed")
@pytest.mark.parametrize(
    ("fmt", "format_name", "codec"),
    [
        ("mp3", "mp3", "mp3"),
        ("opus", "ogg", "opus"),
        ("flac", "flac", "flac"),
        ("aac", "aac", "aac"),
    ],
)
def test_ffprobe_reads_each_codec(tmp_path: Path, fmt: str, format_name: str, codec: str) -> None:
    _, data = encode_in_chunks(fmt, speech_like(2.0, seed=4), 20)
    path = tmp_path / f"out.{fmt}"
    path.write_bytes(data)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format", str(path)],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    info = json.loads(probe.stdout)
    assert info["format"]["format_name"] == format_name
    assert [s["codec_name"] for s in info["streams"]] == [codec]
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", "24000", "-"],
        capture_output=True, timeout=30, check=True,
    )  # fmt: skip
    assert abs(len(decoded.stdout) / 2 / RATE - 2.0) <= TOLERANCE_S[fmt]
