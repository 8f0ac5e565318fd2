"""Incremental audio decoders: container bytes in as they arrive, s16le mono PCM out.

The counterpart of dsp/encoders.py for audio that comes from elsewhere (an upstream that
answers mp3 or Ogg Opus instead of raw PCM). `feed()` returns the PCM decodable so far;
`flush()` returns the rest at the end of the stream. `sample_rate_hz` is known once the first
audio is out. Bytes that are not the promised format raise `DecodeError`.

Raw codec streams (mp3, ADTS AAC, FLAC) go through FFmpeg's parsers via PyAV; Ogg pages are
split here (a page is a few lines of framing) and their Opus packets decoded by PyAV.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from typing import cast

import av
import av.error
from av.audio.codeccontext import AudioCodecContext

from dsp.levels import align_samples
from dsp.wav import WavReader

PCM_RATE_HZ = 24_000  # OpenAI's `pcm`: header-less 24 kHz s16le mono
MAX_BAD_PACKETS = 8  # a tag or a torn first frame is normal; more is not audio


class DecodeError(ValueError):
    """The bytes are not audio in the format they were said to be."""


class StreamDecoder(ABC):
    """Bytes of one audio stream in, s16le mono PCM out, as soon as it is decodable."""

    sample_rate_hz: int | None = None

    @abstractmethod
    def feed(self, data: bytes) -> bytes:
        """PCM decodable from everything fed so far (b"" while a frame is incomplete)."""

    @abstractmethod
    def flush(self) -> bytes:
        """The rest of the PCM at the end of the stream."""


class PcmDecoder(StreamDecoder):
    def __init__(self, sample_rate_hz: int = PCM_RATE_HZ) -> None:
        self.sample_rate_hz = sample_rate_hz
        self._carry = b""

    def feed(self, data: bytes) -> bytes:
        out, self._carry = align_samples(self._carry, data)
        return out

    def flush(self) -> bytes:
        return b""  # half a sample cannot be played


class WavDecoder(StreamDecoder):
    def __init__(self) -> None:
        self._reader = WavReader()

    def feed(self, data: bytes) -> bytes:
        try:
            out = self._reader.feed(data)
        except ValueError as e:
            raise DecodeError(str(e)) from e
        if self._reader.format is not None:
            self.sample_rate_hz = self._reader.format.sample_rate_hz
        return out

    def flush(self) -> bytes:
        if not self._reader.in_data:
            raise DecodeError("the WAV stream ended before its audio began")
        return b""


class _AvDecoder(StreamDecoder):
    """Decoded frames of one PyAV codec context, converted to s16 mono at their own rate."""

    def __init__(self, codec: str) -> None:
        self._ctx = cast(AudioCodecContext, av.CodecContext.create(codec, "r"))
        self._resampler: av.AudioResampler | None = None
        self._bad = 0
        self._good = 0

    def _decode(self, packet: av.Packet | None) -> bytes:
        try:
            frames = self._ctx.decode(packet)
        except av.error.FFmpegError as e:
            self._bad += 1
            if self._bad > MAX_BAD_PACKETS and self._bad > self._good:
                raise DecodeError(f"not {self._ctx.name} audio: {e}") from e
            return b""
        out = []
        for frame in frames:
            self._good += 1
            if self._resampler is None:
                self.sample_rate_hz = frame.sample_rate
                self._resampler = av.AudioResampler(format="s16", layout="mono",
                                                    rate=frame.sample_rate)
            out += [bytes(f.planes[0])[: f.samples * 2] for f in self._resampler.resample(frame)]
        return b"".join(out)

    def _finish(self) -> bytes:
        out = self._decode(None)
        if self._resampler is not None:
            out += b"".join(bytes(f.planes[0])[: f.samples * 2]
                            for f in self._resampler.resample(None))
        if not self._good or self._bad > self._good:
            raise DecodeError(f"no {self._ctx.name} audio in the stream ({self._good} frames "
                              f"decoded, {self._bad} packets rejected)")
        return out


class ParsedDecoder(_AvDecoder):
    """mp3, ADTS AAC or FLAC as a raw bitstream: FFmpeg's parser finds the frames."""

    def __init__(self, codec: str) -> None:
        super().__init__(codec)
        self._head = b""  # leading bytes held until the ID3 tag / FLAC metadata are known
        self._started = False
        # FFmpeg's FLAC parser crashes on some tiny inputs (8, 16, 32 bytes seen): give it
        # at least this much at a time (about 20 ms of 24 kHz FLAC).
        self._min_parse = 1024 if codec == "flac" else 1
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        if not self._started:
            self._head += data
            data = self._strip_header()
            if not self._started:
                return b""
        self._pending += data
        if len(self._pending) < self._min_parse:
            return b""
        data, self._pending = self._pending, b""
        return b"".join(self._decode(p) for p in self._ctx.parse(data))

    def flush(self) -> bytes:
        if not self._started:
            self._started = True
            self._pending, self._head = self._head, b""
        data, self._pending = self._pending, b""
        parts = [self._decode(p) for p in self._ctx.parse(data)] if data else []
        for _ in range(10_000):  # the FLAC parser hands out one held frame per empty call
            packets = self._ctx.parse(None)
            if not packets:
                break
            parts += [self._decode(p) for p in packets]
        return b"".join(parts) + self._finish()

    def _strip_header(self) -> bytes:
        head = self._head
        if head[:3] == b"ID3":  # ID3v2 tag: 10 bytes + a syncsafe size
            if len(head) < 10:
                return b""
            size = 10 + ((head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9])
            if len(head) < size:
                return b""
            head = head[size:]
        elif head[:4] == b"fLaC":  # metadata blocks; STREAMINFO is the decoder's extradata
            pos = 4
            while True:
                if len(head) < pos + 4:
                    return b""
                block_type, length = head[pos], int.from_bytes(head[pos + 1 : pos + 4], "big")
                if len(head) < pos + 4 + length:
                    return b""
                if block_type & 0x7F == 0:
                    self._ctx.extradata = head[pos + 4 : pos + 4 + length]
                pos += 4 + length
                if block_type & 0x80:
                    break
            head = head[pos:]
        elif len(head) < 4:
            return b""
        self._started = True
        self._head = b""
        return head


class OggOpusDecoder(_AvDecoder):
    """Ogg pages split into packets here; OpusHead configures the decoder, its pre-skip drops
    the encoder's priming samples."""

    def __init__(self) -> None:
        super().__init__("opus")
        self._buf = bytearray()
        self._packet = bytearray()
        self._packets_seen = 0
        self._skip_bytes = 0

    def feed(self, data: bytes) -> bytes:
        self._buf += data
        return b"".join(self._on_packet(p) for p in self._pages())

    def flush(self) -> bytes:
        if self._buf:
            raise DecodeError(f"the Ogg stream ends inside a page ({len(self._buf)} bytes)")
        return self._trim(self._finish())

    def _pages(self) -> list[bytes]:
        packets: list[bytes] = []
        buf = self._buf
        while len(buf) >= 27:
            if buf[:4] != b"OggS":
                raise DecodeError(f"not an Ogg stream: {bytes(buf[:8])!r}")
            nseg = buf[26]
            if len(buf) < 27 + nseg:
                break
            lacing = buf[27 : 27 + nseg]
            if len(buf) < 27 + nseg + sum(lacing):
                break
            pos = 27 + nseg
            for size in lacing:
                self._packet += buf[pos : pos + size]
                pos += size
                if size < 255:  # a lacing value below 255 ends the packet
                    packets.append(bytes(self._packet))
                    self._packet.clear()
            del buf[:pos]
        return packets

    def _on_packet(self, packet: bytes) -> bytes:
        self._packets_seen += 1
        if self._packets_seen == 1:
            if packet[:8] != b"OpusHead" or len(packet) < 19:
                raise DecodeError("the Ogg stream does not carry Opus (no OpusHead)")
            self._ctx.extradata = packet
            (pre_skip,) = struct.unpack("<H", packet[10:12])
            self._skip_bytes = 2 * pre_skip  # pre-skip counts 48 kHz samples
            return b""
        if self._packets_seen == 2:
            return b""  # OpusTags
        return self._trim(self._decode(av.Packet(packet)))

    def _trim(self, pcm: bytes) -> bytes:
        if self._skip_bytes and pcm:
            cut = min(self._skip_bytes, len(pcm))
            self._skip_bytes -= cut
            pcm = pcm[cut:]
        return pcm


# content type (without parameters) -> format name
CONTENT_FORMATS: dict[str, str] = {
    "audio/pcm": "pcm", "audio/l16": "pcm", "audio/raw": "pcm",
    "application/octet-stream": "pcm",
    "audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/vnd.wave": "wav",
    "audio/mpeg": "mp3", "audio/mp3": "mp3",
    "audio/aac": "aac", "audio/aacp": "aac",
    "audio/flac": "flac", "audio/x-flac": "flac",
    "audio/ogg": "opus", "audio/opus": "opus",
}


def format_of(content_type: str | None) -> str | None:
    """'audio/mpeg; charset=x' -> 'mp3'; None for a type that is not known audio."""
    if not content_type:
        return None
    return CONTENT_FORMATS.get(content_type.split(";")[0].strip().lower())


def rate_param(content_type: str | None) -> int | None:
    """The `rate=` parameter of e.g. 'audio/L16; rate=22050' (RFC 2586), if any."""
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "rate" and value.strip().isdigit():
            return int(value.strip())
    return None


def make_decoder(fmt: str, pcm_rate_hz: int = PCM_RATE_HZ) -> StreamDecoder:
    """A decoder for an OpenAI response_format (pcm, wav, mp3, aac, flac, opus)."""
    if fmt == "pcm":
        return PcmDecoder(pcm_rate_hz)
    if fmt == "wav":
        return WavDecoder()
    if fmt in ("mp3", "aac", "flac"):
        return ParsedDecoder(fmt)
    if fmt == "opus":
        return OggOpusDecoder()
    raise ValueError(f"no decoder for audio format {fmt!r}")
