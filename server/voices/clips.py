"""Reference clips: any audio file in, a checked 24 kHz mono 16-bit WAV out, streamed to disk.

`convert()` decodes with PyAV (FFmpeg) one frame at a time, resamples to 24 kHz mono s16 and
writes the WAV as it goes, so an hour-long upload never sits in memory and a compressed file
that would decode to hours stops at the duration bound. Only audio container formats are
opened (FFmpeg's `format_whitelist`: no playlists, images or network protocols, which could make
FFmpeg read other files), and the clip is refused with the reason when it is not audio (415),
is damaged, longer than the bound, or has too little sound in it (422): a clip whose 20 ms
frames are nearly all below SPEECH_DBFS is silence, not a voice. Blocking: run in a thread.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from server.voices.errors import ClipRejected

if TYPE_CHECKING:
    import av

CLIP_RATE_HZ = 24_000  # what every engine that clones takes (XTTS's own rate)
FRAME_MS = 20  # the level meter's window
SPEECH_DBFS = -40.0  # a window this loud or louder holds sound (speech peaks near -20..-6)
MIN_SPEECH_S = 1.0  # a clone needs at least this much sound
JOIN_GAP_MS = 300  # silence between clips in the joined reference
FORMATS = ("wav", "mp3", "flac", "ogg", "matroska", "webm", "mov", "mp4", "m4a", "aac",
           "aiff", "w64", "caf")
FORMAT_NAMES = "WAV, MP3, FLAC, Ogg (Vorbis/Opus), WebM, MP4/M4A, AAC or AIFF"
_OPEN_OPTIONS = {"format_whitelist": ",".join(FORMATS), "protocol_whitelist": "file"}


@dataclass(frozen=True)
class ClipInfo:
    """A converted clip: its length and how much of it holds sound."""

    duration_ms: float
    speech_ms: float
    size_bytes: int  # the WAV written


class _SoundMeter:
    """Counts 20 ms windows at or above SPEECH_DBFS in s16 mono PCM fed in pieces."""

    def __init__(self, rate_hz: int) -> None:
        self.window = rate_hz * FRAME_MS // 1000
        self._carry: np.ndarray = np.zeros(0, dtype=np.int16)
        self.loud_windows = 0
        self._floor = (10 ** (SPEECH_DBFS / 20) * 32768) ** 2  # mean square at the threshold

    def feed(self, samples: np.ndarray) -> None:
        data = np.concatenate([self._carry, samples]) if self._carry.size else samples
        whole = data.size - data.size % self.window
        if whole:
            frames = data[:whole].astype(np.float64).reshape(-1, self.window)
            self.loud_windows += int(np.count_nonzero((frames ** 2).mean(axis=1) >= self._floor))
        self._carry = data[whole:]

    @property
    def loud_ms(self) -> float:
        return float(self.loud_windows * FRAME_MS)


def convert(src: Path, dst: Path, *, max_s: float, label: str = "the clip") -> ClipInfo:
    """Decode `src` (any audio format) into `dst` (24 kHz mono s16 WAV); ClipRejected with
    the reason when it cannot be a reference clip. `label` names the file in messages.
    PyAV is imported here, on the first upload: a server that never stores a voice does not
    hold it (~40 MB)."""
    import av
    import av.error

    try:
        container = av.open(str(src), options=_OPEN_OPTIONS)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise ClipRejected(f"{label} is not an audio file in a known format ({FORMAT_NAMES})",
                           status=415) from e
    try:
        if not container.streams.audio:
            raise ClipRejected(f"{label} holds no audio stream", status=415)
        return _decode(container, dst, max_s=max_s, label=label)
    finally:
        container.close()


def _decode(container: av.container.InputContainer, dst: Path, *, max_s: float,
            label: str) -> ClipInfo:
    import av
    import av.error

    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="s16", layout="mono", rate=CLIP_RATE_HZ)
    meter = _SoundMeter(CLIP_RATE_HZ)
    limit = int(max_s * CLIP_RATE_HZ)
    samples = 0
    with wave.open(str(dst), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(CLIP_RATE_HZ)

        def write(frames: list[av.AudioFrame]) -> None:
            nonlocal samples
            for frame in frames:
                pcm = frame.to_ndarray().reshape(-1).astype(np.int16, copy=False)
                samples += pcm.size
                if samples > limit:
                    raise ClipRejected(f"{label} is longer than {max_s:g} s "
                                       "(VOICE_MAX_CLIP_S); trim it")
                meter.feed(pcm)
                out.writeframes(pcm.tobytes())

        try:
            for frame in container.decode(stream):
                write(resampler.resample(frame))
            write(resampler.resample(None))
        except av.error.FFmpegError as e:
            raise ClipRejected(f"{label} is damaged: FFmpeg could not decode it ({e})") from e
    if samples == 0:
        raise ClipRejected(f"{label} holds no audio")
    loud_s = meter.loud_ms / 1000
    if loud_s < MIN_SPEECH_S:
        what = ("is silent" if meter.loud_windows == 0
                else f"holds only {loud_s:.1f} s of sound")
        raise ClipRejected(f"{label} {what}: a clone needs at least {MIN_SPEECH_S:g} s louder "
                           f"than {SPEECH_DBFS:g} dBFS (record closer, or louder)")
    return ClipInfo(duration_ms=1000 * samples / CLIP_RATE_HZ, speech_ms=meter.loud_ms,
                    size_bytes=dst.stat().st_size)


def join(clips: list[Path], dst: Path, block_frames: int = 24_000) -> None:
    """One reference WAV from several clips (a short silence between them), block by block:
    engines that clone from one file (XTTS's clone route) hear every clip."""
    gap = b"\0\0" * (CLIP_RATE_HZ * JOIN_GAP_MS // 1000)
    with wave.open(str(dst), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(CLIP_RATE_HZ)
        for i, clip in enumerate(clips):
            if i:
                out.writeframes(gap)
            with wave.open(str(clip), "rb") as src:
                while True:
                    data = src.readframes(block_frames)
                    if not data:
                        break
                    out.writeframes(data)


__all__ = ["CLIP_RATE_HZ", "ClipInfo", "FORMAT_NAMES", "MIN_SPEECH_S", "convert", "join"]
