"""Read a WAV byte stream as it arrives: the header (true sizes, or a streaming writer's 0,
0xFFFFFFFF or espeak-ng's 0x7FFFF000) and its PCM converted to s16 mono."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

FORMAT_PCM = 1
FORMAT_FLOAT = 3
FORMAT_EXTENSIBLE = 0xFFFE
UNKNOWN_SIZE_FROM = 0x7FFF0000  # sizes this large are placeholders, not lengths
MAX_HEADER_CHUNK = 1 << 20  # a fmt/LIST chunk larger than this is not a header


class NotWav(ValueError):
    """The bytes are not a PCM WAV stream we can read."""


@dataclass(frozen=True)
class WavFormat:
    """What a WAV header says: sample format, and where the PCM starts and how long it is."""

    sample_rate_hz: int
    channels: int
    sample_width_bytes: int
    is_float: bool
    data_offset: int  # bytes of header before the first PCM byte
    data_bytes: int | None  # None: unknown, read to the end of the stream

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.sample_width_bytes


def parse_wav_header(buf: bytes) -> WavFormat | None:
    """The format once `buf` holds the header up to the data chunk; None while more bytes are
    needed. Raises NotWav when the bytes are not RIFF/WAVE PCM (integer or 32-bit float)."""
    if buf[:4] != b"RIFF"[: len(buf)] or buf[8:12] != b"WAVE"[: max(0, len(buf) - 8)]:
        raise NotWav(f"not a WAV stream: starts with {buf[:12]!r}")
    pos, fmt = 12, None
    while True:
        if len(buf) < pos + 8:
            return None
        chunk_id = buf[pos : pos + 4]
        (size,) = struct.unpack_from("<I", buf, pos + 4)
        if chunk_id == b"data":
            if fmt is None:
                raise NotWav("WAV data chunk before its fmt chunk")
            known = 0 < size < UNKNOWN_SIZE_FROM
            return WavFormat(*fmt, data_offset=pos + 8, data_bytes=size if known else None)
        if size > MAX_HEADER_CHUNK:
            raise NotWav(f"WAV {chunk_id!r} chunk of {size} bytes before the data")
        if len(buf) < pos + 8 + size:
            return None
        if chunk_id == b"fmt ":
            fmt = _fmt(buf[pos + 8 : pos + 8 + size])
        pos += 8 + size + (size & 1)


def _fmt(body: bytes) -> tuple[int, int, int, bool]:
    if len(body) < 16:
        raise NotWav(f"WAV fmt chunk of {len(body)} bytes")
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
    if tag == FORMAT_EXTENSIBLE and len(body) >= 26:
        (tag,) = struct.unpack_from("<H", body, 24)  # the sub-format GUID starts with the tag
    width = bits // 8
    is_float = tag == FORMAT_FLOAT
    if not (tag == FORMAT_PCM and width in (1, 2, 3, 4) or is_float and width == 4):
        raise NotWav(f"WAV format {tag} with {bits}-bit samples is not PCM we read")
    if channels < 1 or rate < 1:
        raise NotWav(f"WAV with {channels} channels at {rate} Hz")
    return rate, channels, width, is_float


def to_s16_mono(pcm: bytes, fmt: WavFormat) -> bytes:
    """Whole frames of `fmt` -> s16le mono (channels averaged)."""
    w = fmt.sample_width_bytes
    if fmt.is_float:
        x = np.clip(np.frombuffer(pcm, "<f4"), -1.0, 1.0) * 32767.0
    elif w == 2:
        x = np.frombuffer(pcm, "<i2")
    elif w == 1:  # unsigned 8-bit
        x = (np.frombuffer(pcm, np.uint8).astype(np.int16) - 128) << 8
    elif w == 3:
        b = np.frombuffer(pcm, np.uint8).reshape(-1, 3).astype(np.int32)
        x = ((b[:, 0] << 8 | b[:, 1] << 16 | b[:, 2] << 24) >> 16).astype(np.int16)
    else:
        x = (np.frombuffer(pcm, "<i4") >> 16).astype(np.int16)
    if fmt.channels > 1:
        x = x.reshape(-1, fmt.channels).mean(axis=1)
    if x.dtype == np.int16 and x.dtype.byteorder in ("<", "="):
        return x.tobytes()
    return np.rint(x).astype("<i2").tobytes()


__all__ = ["NotWav", "WavFormat", "parse_wav_header", "to_s16_mono"]
