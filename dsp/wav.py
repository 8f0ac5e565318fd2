"""RIFF/WAVE for PCM: headers with true sizes for files, 0xFFFFFFFF sizes for streams, and an
incremental reader that takes any WAV stream (streaming writers' 0 or 0xFFFFFFFF sizes too)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from dsp.pcm import float_to_pcm16

STREAMING_SIZE = 0xFFFFFFFF  # what OpenAI sends as RIFF and data size when the length is unknown
HEADER_BYTES = 44


def wav_header(
    sample_rate_hz: int, data_bytes: int | None = None, channels: int = 1, bits: int = 16
) -> bytes:
    """The 44-byte canonical PCM WAV header; data_bytes=None gives the streaming form."""
    if sample_rate_hz <= 0 or channels <= 0 or bits % 8 or bits <= 0:
        raise ValueError(f"bad WAV format: {sample_rate_hz} Hz, {channels} ch, {bits} bit")
    block_align = channels * bits // 8
    if data_bytes is None:
        riff_size = data_size = STREAMING_SIZE
    else:
        if data_bytes < 0 or data_bytes > STREAMING_SIZE - 36:
            raise ValueError(f"data_bytes out of range for WAV: {data_bytes}")
        data_size = data_bytes
        # RIFF size covers everything after its own field; an odd data chunk gets a pad byte
        riff_size = 36 + data_bytes + (data_bytes & 1)
    return b"".join(
        (
            b"RIFF",
            struct.pack("<I", riff_size),
            b"WAVEfmt ",
            struct.pack(
                "<IHHIIHH",
                16,  # fmt chunk size
                1,  # WAVE_FORMAT_PCM
                channels,
                sample_rate_hz,
                sample_rate_hz * block_align,  # byte rate
                block_align,
                bits,
            ),
            b"data",
            struct.pack("<I", data_size),
        )
    )


def wav_file(pcm: bytes, sample_rate_hz: int) -> bytes:
    """A complete mono 16-bit WAV file with true sizes."""
    pad = b"\x00" if len(pcm) & 1 else b""
    return wav_header(sample_rate_hz, len(pcm)) + pcm + pad


# ------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class WavFormat:
    """What a WAV `fmt ` chunk declares."""

    sample_rate_hz: int
    channels: int
    bits: int
    is_float: bool

    @property
    def block_align(self) -> int:
        return self.channels * self.bits // 8


# Streaming writers declare "zero frames", 0xFFFFFFFF ("as long as it goes") or, like
# espeak-ng, some other huge placeholder: every such size means "the rest is audio".
UNKNOWN_SIZE_FROM = 0x7FFF0000
_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


class WavReader:
    """Incremental RIFF/WAVE reader: `feed()` bytes as they arrive, get s16le mono PCM out.

    Streaming writers declare a data size of 0, 0xFFFFFFFF or another huge placeholder and then
    write PCM until the body ends; all mean "the rest of the stream is audio". A true size is honoured (chunks after
    the data are ignored). Chunks before the data (LIST, fact, ...) are skipped. 8/16/24/32-bit
    integer and 32/64-bit float PCM are converted to s16; several channels are averaged.
    Raises ValueError on bytes that are not a PCM WAV.
    """

    def __init__(self) -> None:
        self.format: WavFormat | None = None
        self._buf = bytearray()
        self._riff_seen = False
        self._data_left: int | None = None  # None: not in the data chunk yet; -1: unbounded
        self._done = False

    @property
    def in_data(self) -> bool:
        return self._data_left is not None

    def feed(self, data: bytes) -> bytes:
        """s16le mono PCM for the whole sample frames available so far."""
        if self._done:
            return b""
        self._buf += data
        if self._data_left is None and not self._parse_header():
            return b""
        assert self.format is not None
        take = len(self._buf)
        if self._data_left is not None and self._data_left >= 0:
            take = min(take, self._data_left)
        take -= take % self.format.block_align
        raw = bytes(self._buf[:take])
        del self._buf[:take]
        if self._data_left is not None and self._data_left >= 0:
            self._data_left -= take
            if self._data_left == 0:
                self._done = True
                self._buf.clear()
        return to_s16_mono(raw, self.format)

    def _parse_header(self) -> bool:
        """Consume header chunks up to the data chunk; True once audio bytes follow."""
        buf = self._buf
        if not self._riff_seen:
            if len(buf) < 12:
                if not b"RIFF".startswith(bytes(buf[:4])):
                    raise ValueError(f"not a WAV stream: starts with {bytes(buf[:12])!r}")
                return False
            if buf[:4] != b"RIFF" or buf[8:12] != b"WAVE":
                raise ValueError(f"not a WAV stream: starts with {bytes(buf[:12])!r}")
            del buf[:12]
            self._riff_seen = True
        while len(buf) >= 8:
            chunk_id = bytes(buf[:4])
            (size,) = struct.unpack("<I", buf[4:8])
            if chunk_id == b"data":
                if self.format is None:
                    raise ValueError("WAV data chunk before its fmt chunk")
                del buf[:8]
                self._data_left = -1 if size == 0 or size >= UNKNOWN_SIZE_FROM else size
                return True
            padded = size + (size & 1)
            if len(buf) < 8 + padded:
                return False
            body = bytes(buf[8 : 8 + size])
            del buf[: 8 + padded]
            if chunk_id == b"fmt ":
                self.format = _parse_fmt(body)
        return False


def _parse_fmt(body: bytes) -> WavFormat:
    if len(body) < 16:
        raise ValueError("WAV fmt chunk too short")
    tag, channels, rate, _byte_rate, _align, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == _EXTENSIBLE and len(body) >= 26:
        (tag,) = struct.unpack("<H", body[24:26])  # the sub-format GUID starts with the tag
    is_float = tag == _FLOAT
    if tag not in (_PCM, _FLOAT) or channels < 1 or rate < 1:
        raise ValueError(f"unsupported WAV format: tag {tag:#x}, {channels} ch, {rate} Hz")
    if (is_float and bits not in (32, 64)) or (not is_float and bits not in (8, 16, 24, 32)):
        raise ValueError(f"unsupported WAV sample size: {bits} bit{' float' if is_float else ''}")
    return WavFormat(rate, channels, bits, is_float)


def to_s16_mono(raw: bytes, fmt: WavFormat) -> bytes:
    """Whole sample frames in `fmt` -> s16le mono."""
    if not raw:
        return b""
    if fmt.bits == 16 and not fmt.is_float and fmt.channels == 1:
        return raw
    width = fmt.bits // 8
    if fmt.is_float:  # float samples: the one float-to-PCM16 conversion (dsp/pcm.py)
        x = np.frombuffer(raw, dtype="<f4" if width == 4 else "<f8").astype(np.float64)
        if fmt.channels > 1:
            x = x.reshape(-1, fmt.channels).mean(axis=1)
        return float_to_pcm16(x)
    if width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = np.where(v >= 1 << 23, v - (1 << 24), v).astype(np.float64) / float(1 << 23)
    else:
        x = np.frombuffer(raw, dtype=f"<i{width}").astype(np.float64) / float(1 << (fmt.bits - 1))
    if fmt.channels > 1:
        x = x.reshape(-1, fmt.channels).mean(axis=1)
    # integer samples keep their top 16 bits (exact for 16-bit sources, rounded for wider)
    return np.clip(np.rint(x * 32768.0), -32768, 32767).astype("<i2").tobytes()
