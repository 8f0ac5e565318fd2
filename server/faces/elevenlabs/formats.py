"""ElevenLabs `output_format` values (`codec_rate[_kbps]`): parsed, and encoded as audio arrives.

The pipeline's 24 kHz s16le PCM is resampled with soxr (dsp/resample.py) to the format's rate
and encoded with the encoders the OpenAI route uses (dsp/encoders.py: PyAV for mp3 and Ogg
Opus, PyAV's G.711 codecs for μ-law and A-law). `pcm_*`, `ulaw_8000` and `alaw_8000` are
header-less, as on ElevenLabs; `wav_*` is one RIFF header (true sizes for a whole file,
0xFFFFFFFF sizes when streamed).
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.base import PIPELINE_RATE_HZ
from adapters.errors import BadRequest
from dsp.encoders import CONTENT_TYPES, Encoder, G711Encoder, make_encoder
from dsp.resample import StreamResampler

DEFAULT_OUTPUT_FORMAT = "mp3_44100_128"  # what ElevenLabs answers when none is asked for
PCM_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
# LAME: MPEG-2 rates go up to 160 kbps, MPEG-1 rates start at 32 kbps.
_MP3_KBPS = {
    16000: (32, 48, 64, 96, 128, 160), 22050: (32, 48, 64, 96, 128, 160),
    24000: (32, 48, 64, 96, 128, 160),
    32000: (32, 48, 64, 96, 128, 160, 192, 256, 320),
    44100: (32, 48, 64, 96, 128, 160, 192, 256, 320),
    48000: (32, 48, 64, 96, 128, 160, 192, 256, 320),
}
_OPUS_KBPS = (32, 64, 96, 128, 192)
_HEADERLESS = {"ulaw": "audio/basic", "alaw": "audio/x-alaw-basic"}


@dataclass(frozen=True)
class OutputFormat:
    """One output format: codec, sample rate in Hz, bit rate in kbps for lossy codecs."""

    name: str
    codec: str  # pcm | wav | mp3 | opus | ulaw | alaw
    sample_rate_hz: int
    kbps: int | None = None

    @property
    def content_type(self) -> str:
        return _HEADERLESS.get(self.codec) or CONTENT_TYPES[self.codec]

    def encoder(self, *, streaming: bool) -> OutputEncoder:
        return OutputEncoder(self, streaming=streaming)


def supported_formats() -> list[str]:
    names = [f"pcm_{r}" for r in PCM_RATES] + [f"wav_{r}" for r in PCM_RATES]
    names += [f"mp3_{r}_{k}" for r, ks in _MP3_KBPS.items() for k in ks]
    names += [f"opus_48000_{k}" for k in _OPUS_KBPS] + ["ulaw_8000", "alaw_8000"]
    return names


def parse_output_format(value: str | None) -> OutputFormat:
    """`mp3_44100_128` -> OutputFormat; BadRequest (422, field output_format) when unknown."""
    name = value or DEFAULT_OUTPUT_FORMAT
    parts = name.split("_")
    fmt = _parse(parts) if all(p.isdigit() for p in parts[1:]) and len(parts) > 1 else None
    if fmt is None:
        raise BadRequest(
            f"output_format {name!r} is not supported; use pcm_<rate> or wav_<rate> with a rate "
            f"of {', '.join(map(str, PCM_RATES))}, mp3_<rate>_<kbps>, opus_48000_<kbps> "
            f"({', '.join(map(str, _OPUS_KBPS))}), ulaw_8000 or alaw_8000",
            field="output_format", status=422)
    return OutputFormat(name, *fmt)


def _parse(parts: list[str]) -> tuple[str, int, int | None] | None:
    codec, rate = parts[0], int(parts[1])
    kbps = int(parts[2]) if len(parts) == 3 else None
    if len(parts) > 3:
        return None
    if codec in ("pcm", "wav") and rate in PCM_RATES and kbps is None:
        return codec, rate, None
    if codec in ("ulaw", "alaw") and rate == 8000 and kbps is None:
        return codec, rate, None
    if codec == "mp3" and kbps in _MP3_KBPS.get(rate, ()):
        return codec, rate, kbps
    if codec == "opus" and rate == 48000 and kbps in _OPUS_KBPS:
        return codec, rate, kbps
    return None


class OutputEncoder:
    """24 kHz s16le mono in, the format's bytes out: `encode()` as audio arrives, `flush()`
    once at the end (the codec's tail and, for a whole WAV file, everything)."""

    def __init__(self, fmt: OutputFormat, *, streaming: bool) -> None:
        self.format = fmt
        # Opus is encoded at 48 kHz from the pipeline rate by the codec's own resampler.
        rate = PIPELINE_RATE_HZ if fmt.codec == "opus" else fmt.sample_rate_hz
        self._resampler = StreamResampler(PIPELINE_RATE_HZ, rate)
        self._encoder: Encoder
        if fmt.codec in _HEADERLESS:
            self._encoder = G711Encoder(fmt.codec, rate)
        else:
            self._encoder = make_encoder(fmt.codec, rate, streaming=streaming,
                                         bit_rate=fmt.kbps * 1000 if fmt.kbps else None)

    def encode(self, pcm: bytes) -> bytes:
        return self._encoder.encode(self._resampler.process(pcm))

    def flush(self) -> bytes:
        return self._encoder.encode(self._resampler.flush()) + self._encoder.flush()


__all__ = ["DEFAULT_OUTPUT_FORMAT", "OutputEncoder", "OutputFormat", "parse_output_format",
           "supported_formats"]
