"""Pure audio and text helpers: segmentation, resampling, seams, containers, tempo, levels."""

from dsp.chunker import EMOTION_TAGS, Chunker, normalize_whitespace, split_text
from dsp.encoders import CONTENT_TYPES, FORMATS, Encoder, make_encoder
from dsp.levels import (
    SILENCE_DBFS,
    align_samples,
    float_to_pcm,
    pcm_to_float,
    peak_dbfs,
    rms_dbfs,
)
from dsp.resample import StreamResampler, resample
from dsp.stitcher import Stitcher, stitch
from dsp.tempo import TimeStretcher
from dsp.wav import STREAMING_SIZE, wav_file, wav_header

__all__ = [
    "CONTENT_TYPES",
    "EMOTION_TAGS",
    "FORMATS",
    "SILENCE_DBFS",
    "STREAMING_SIZE",
    "Chunker",
    "Encoder",
    "StreamResampler",
    "Stitcher",
    "TimeStretcher",
    "align_samples",
    "float_to_pcm",
    "make_encoder",
    "normalize_whitespace",
    "pcm_to_float",
    "peak_dbfs",
    "rms_dbfs",
    "resample",
    "split_text",
    "stitch",
    "wav_file",
    "wav_header",
]
