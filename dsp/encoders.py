"""Incremental audio encoders: one container per response, bytes out as soon as they exist.

PyAV (~20 MB of FFmpeg in memory) is imported by the encoders that use it, on first use: a
server that only sends WAV or PCM never loads it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    from av.audio.stream import AudioStream

from dsp.levels import align_samples
from dsp.wav import wav_file, wav_header

FORMATS: tuple[str, ...] = ("wav", "pcm", "mp3", "opus", "flac", "aac")
CONTENT_TYPES: dict[str, str] = {
    "wav": "audio/wav",
    "pcm": "audio/pcm",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",  # Ogg Opus, as OpenAI sends it
    "flac": "audio/flac",
    "aac": "audio/aac",  # ADTS
}


class Encoder(ABC):
    """Turns s16le mono PCM into one container: encode() as audio arrives, flush() once."""

    content_type: str

    @abstractmethod
    def encode(self, pcm: bytes) -> bytes:
        """Container bytes ready now; b"" while the codec is still buffering."""

    @abstractmethod
    def flush(self) -> bytes:
        """Everything still buffered, and the container's end. The encoder is then spent."""


class PcmEncoder(Encoder):
    content_type = CONTENT_TYPES["pcm"]

    def encode(self, pcm: bytes) -> bytes:
        return pcm

    def flush(self) -> bytes:
        return b""


class WavStreamEncoder(Encoder):
    """A RIFF header with unknown (0xFFFFFFFF) sizes, then raw PCM."""

    content_type = CONTENT_TYPES["wav"]

    def __init__(self, sample_rate_hz: int) -> None:
        self._header: bytes | None = wav_header(sample_rate_hz)

    def _take_header(self) -> bytes:
        header, self._header = self._header or b"", None
        return header

    def encode(self, pcm: bytes) -> bytes:
        return self._take_header() + pcm

    def flush(self) -> bytes:
        return self._take_header()  # an empty stream is still a valid (empty) WAV


class WavFileEncoder(Encoder):
    """Buffers everything and returns one WAV with true sizes at flush()."""

    content_type = CONTENT_TYPES["wav"]

    def __init__(self, sample_rate_hz: int) -> None:
        self._rate = sample_rate_hz
        self._parts: list[bytes] = []

    def encode(self, pcm: bytes) -> bytes:
        self._parts.append(pcm)
        return b""

    def flush(self) -> bytes:
        out = wav_file(b"".join(self._parts), self._rate)
        self._parts = []
        return out


class _Sink:
    """A write-only file for the muxer; having no seek() keeps muxers from rewriting headers."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


def _av() -> Any:
    import av

    return av


# container, codec, codec rate (None = the input rate), bit rate, muxer options, codec options
_AV_SPECS: dict[str, tuple[str, str, int | None, int | None, dict[str, str], dict[str, str]]] = {
    "mp3": ("mp3", "libmp3lame", None, 64_000, {}, {}),
    # libopus runs at 48 kHz; PyAV's frame preparation resamples. 100 ms Ogg pages instead
    # of the muxer's 1 s default, so a streaming client gets audio early
    "opus": ("ogg", "libopus", 48_000, 32_000, {"page_duration": "100000"}, {}),
    "flac": ("flac", "flac", None, None, {}, {}),
    # the default "twoloop" coder costs ~3.5x the CPU on speech for no audible gain at 64k
    "aac": ("adts", "aac", None, 64_000, {}, {"aac_coder": "fast"}),
}


class AvEncoder(Encoder):
    """mp3 / Ogg Opus / FLAC / ADTS AAC through PyAV's in-process FFmpeg."""

    def __init__(self, fmt: str, sample_rate_hz: int, *, bit_rate: int | None = None) -> None:
        import av

        container_fmt, codec, codec_rate, default_bit_rate, options, codec_options = _AV_SPECS[fmt]
        bit_rate = bit_rate or default_bit_rate
        self.content_type = CONTENT_TYPES[fmt]
        self._rate = sample_rate_hz
        self._sink = _Sink()
        self._container = av.open(self._sink, mode="w", format=container_fmt, options=options)
        self._stream = cast(
            "AudioStream",
            self._container.add_stream(
                codec, rate=codec_rate or sample_rate_hz, layout="mono", options=codec_options
            ),
        )
        if bit_rate:
            self._stream.bit_rate = bit_rate
        self._pts = 0
        self._carry = b""
        self._closed = False

    def encode(self, pcm: bytes) -> bytes:
        if self._closed:
            raise RuntimeError("encode() after flush()")
        data, self._carry = align_samples(self._carry, pcm)
        if data:
            samples = np.frombuffer(data, dtype="<i2").reshape(1, -1)
            frame = _av().AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = self._rate
            frame.pts = self._pts
            self._pts += samples.shape[1]
            self._container.mux(self._stream.encode(frame))
        return self._sink.drain()

    def flush(self) -> bytes:
        if self._closed:
            return b""
        self._closed = True
        self._container.mux(self._stream.encode(None))
        self._container.close()
        return self._sink.drain()


class G711Encoder(Encoder):
    """Header-less G.711 (one byte per sample) through PyAV's pcm_mulaw / pcm_alaw codecs."""

    def __init__(self, law: str, sample_rate_hz: int = 8000) -> None:
        if law not in ("ulaw", "alaw"):
            raise ValueError(f"unknown G.711 law {law!r}; expected ulaw or alaw")
        self.content_type = "audio/basic" if law == "ulaw" else "audio/x-alaw-basic"
        self._codec = _av().CodecContext.create("pcm_mulaw" if law == "ulaw" else "pcm_alaw", "w")
        self._codec.sample_rate = sample_rate_hz
        self._codec.format = "s16"
        self._codec.layout = "mono"
        self._rate = sample_rate_hz
        self._carry = b""
        self._pts = 0

    def encode(self, pcm: bytes) -> bytes:
        data, self._carry = align_samples(self._carry, pcm)
        if not data:
            return b""
        samples = np.frombuffer(data, dtype="<i2").reshape(1, -1)
        frame = _av().AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = self._rate
        frame.pts = self._pts
        self._pts += samples.shape[1]
        return b"".join(bytes(p) for p in self._codec.encode(frame))

    def flush(self) -> bytes:
        return b""  # sample by sample: nothing is ever held back


def make_encoder(fmt: str, sample_rate_hz: int = 24000, *, streaming: bool = True,
                 bit_rate: int | None = None) -> Encoder:
    """An encoder for an OpenAI response_format; streaming=False only changes WAV (true sizes).
    `bit_rate` (bits per second) overrides the codec's default for mp3, opus and aac."""
    if fmt == "pcm":
        return PcmEncoder()
    if fmt == "wav":
        return WavStreamEncoder(sample_rate_hz) if streaming else WavFileEncoder(sample_rate_hz)
    if fmt in _AV_SPECS:
        return AvEncoder(fmt, sample_rate_hz, bit_rate=bit_rate)
    raise ValueError(f"unknown audio format {fmt!r}; expected one of {', '.join(FORMATS)}")
