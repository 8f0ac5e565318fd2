"""RIFF/WAVE headers for PCM: true sizes for files, 0xFFFFFFFF sizes for streams."""

from __future__ import annotations

import struct

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
