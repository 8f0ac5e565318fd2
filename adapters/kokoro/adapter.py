"""Kokoro-82M in-process on onnxruntime, streamed inside a sentence: the front once per batch,
then the generator window by window, the first window played while the rest is made."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping, Sequence
from contextlib import aclosing, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import espeakng_loader  # noqa: F401 (the kokoro extra: without it the registry names it)
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
from adapters.kokoro.batches import split_phonemes
from adapters.kokoro.edges import Edges, pause_after
from adapters.kokoro.engine import CALIBRATION_ROWS, SAMPLE_RATE_HZ, KokoroEngine
from adapters.kokoro.files import BACKEND, ModelFiles, bundled_voices, locate
from adapters.kokoro.phonemes import G2P, load_vocab, resolve_language
from adapters.kokoro.timing import (
    WordPlan,
    batch_timings,
    plan_words,
    spoken_words,
)
from adapters.kokoro.voices import (
    LANGUAGE_NAMES,
    Style,
    VoiceTable,
    gender_of,
    language_of,
    load_voices,
    parse_blend,
    voice_names,
)
from adapters.kokoro.windows import WINDOWS
from adapters.windowed.steps import stream_steps

PREFERRED_VOICES = ("af_heart", "af_bella")  # the official pack's best, when it is there
WARMUP_TEXT = "This sentence warms the voice up, so that the first request is as fast as the rest."


class _Terminated(Exception):
    """A run aborted by the stream's terminate flag (the stream is being closed)."""


class _Loaded:
    """Everything loaded from the model and voices files."""

    def __init__(self, files: ModelFiles, engine: KokoroEngine, table: VoiceTable,
                 g2p: G2P) -> None:
        self.files = files
        self.engine = engine
        self.table = table
        self.g2p = g2p
        self.styles: dict[str, Style] = {}
        self.counts: dict[tuple[str, str], int] = {}  # (language, word) -> spoken words

    def style(self, spec: str) -> Style:
        found = self.styles.get(spec)
        if found is None:
            if len(self.styles) > 256:
                self.styles.clear()
            found = self.styles[spec] = self.table.style(spec)
        return found


class KokoroAdapter(TTSAdapter):
    """Phonemize; per batch (<= 510 phonemes) one front run, then one generator run per
    window, each a step of its own in a worker thread (the orchestrator's gate picks which
    stream runs next). A cancelled stream also sets onnxruntime's terminate flag, which aborts
    a run within milliseconds. Word timings are exact (from the predicted durations)."""

    name = BACKEND
    capabilities = Capabilities(
        native_rate_hz=SAMPLE_RATE_HZ, streams_sub_sentence=True, chunk_unit="segment",
        languages=("en",), native_speed=True, word_timings=True, phonemes=True,
        # measured (bench part kokoro, 8 texts): a 48-character first segment cut sentences
        # and Whisper's WER went from 0.03 to 0.14; whole first sentences, 0.04, and first
        # audio the same (the first window costs the same whatever the sentence's length)
        whole_sentences=True,
    )

    trims_edges = True  # the model's silent edges off each batch (adapters/kokoro/edges.py)

    def __init__(self, model: str | None = None, voices: str | None = None,
                 intra_op_threads: int = 1, workers: int = 2,
                 default_voice: str | None = None) -> None:
        self._model_setting = model
        self._voices_setting = voices
        self._intra = intra_op_threads
        self._preferred = default_voice
        self.concurrency = workers
        self._workers = threading.BoundedSemaphore(workers)
        self._active = 0  # runs in flight, to pick the fast or the lean session
        self._open = 0  # streams open (on the loop): more than one means load
        self._active_lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._load_lock = threading.Lock()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> KokoroAdapter:
        return cls(
            model=options["kokoro_model"], voices=options["kokoro_voices"],
            intra_op_threads=int(options["kokoro_intra_op_threads"]),
            workers=int(options["kokoro_workers"]), default_voice=options["kokoro_voice"],
        )

    # -- loading

    def _load(self) -> _Loaded:
        with self._load_lock:
            if self._loaded is not None:
                return self._loaded
            files = locate(self._model_setting, self._voices_setting)
            table = VoiceTable(load_voices(files.voices))
            try:
                engine = KokoroEngine(files.model, self._intra)
                g2p = G2P(load_vocab(engine.metadata))
            except ImportError as e:
                raise BackendUnavailable(f"kokoro: missing dependency {e.name or e} "
                                         "(pip install 'morpheus-tts[kokoro]')",
                                         backend=self.name) from e
            except Exception as e:  # onnxruntime's own errors for a file that is no model
                raise BackendUnavailable(f"kokoro: cannot load {files.model}: {e}",
                                         backend=self.name) from e
            self._loaded = _Loaded(files, engine, table, g2p)
            return self._loaded

    # -- voices

    def voices(self) -> list[Voice]:
        try:
            names = self._voice_names()
        except BackendUnavailable:
            return []
        return [Voice(id=name, name=name, language=language_of(name), gender=gender_of(name),
                      description=f"Kokoro-82M voice, {LANGUAGE_NAMES.get(name[:1], '?')}",
                      backend=self.name) for name in names]

    def _voice_names(self) -> list[str]:
        if self._loaded is not None:
            return self._loaded.table.names()
        path = Path(self._voices_setting) if self._voices_setting else bundled_voices()
        if path is None or not path.is_file():
            raise BackendUnavailable("no Kokoro voices", backend=self.name)
        return voice_names(path)  # the tables are checked when the model loads

    def accepts_voice(self, voice: str) -> bool:
        """Whether `voice` is one of the file's voices or a blend of them (`a+b`,
        `a(2)+b(1)`): blends are not listed by voices() but spoken all the same."""
        try:
            names = set(self._voice_names())
            return all(name in names for name, _ in parse_blend(voice))
        except (BadRequest, BackendUnavailable):
            return False

    def default_voice(self) -> str | None:
        try:
            names = self._voice_names()
        except BackendUnavailable:
            return None
        if self._preferred and (self._preferred in names or "+" in self._preferred):
            return self._preferred
        return next((v for v in PREFERRED_VOICES if v in names), names[0] if names else None)

    # -- lifecycle

    async def warmup(self) -> None:
        loaded = await asyncio.to_thread(self._load)
        voice = self.default_voice()
        if voice is None or not loaded.engine.windowed:
            return
        # Calibrate the default voice at every row (whole decodes on both cores), then stream
        # a sentence on the one-core sessions: onnxruntime's first-run allocations and the
        # calibration are paid here, not by the first request.
        style = loaded.style(voice)
        await asyncio.to_thread(self._calibrate, loaded, style)
        await asyncio.to_thread(self._warm, TTSInput(WARMUP_TEXT, voice=voice))

    def _calibrate(self, loaded: _Loaded, style: Style) -> None:
        for row in CALIBRATION_ROWS:
            with self._engine_run(True):
                loaded.engine.stats(style, row + 1, True, loaded.g2p.ids, None)

    def _warm(self, req: TTSInput) -> None:
        import onnxruntime as ort

        for _ in self._speak(req, ort.RunOptions(), lambda: None, force_alone=False):
            pass

    async def aclose(self) -> None:
        with self._load_lock:
            self._loaded = None

    async def health(self) -> Health:
        loaded = self._loaded
        if loaded is not None:
            mode = ("streams inside a sentence (generator windows)" if loaded.engine.windowed
                    else "one batch per run (the graph did not cut)")
            return Health(True, self.name, f"{loaded.files.describe()}; {mode}")
        try:
            import onnxruntime  # noqa: F401
            import phonemizer  # noqa: F401
        except ImportError as e:
            return Health(False, self.name, "onnxruntime",
                          reason=f"missing dependency {e.name} (pip install 'morpheus-tts[kokoro]')")

        def check() -> ModelFiles:
            files = locate(self._model_setting, self._voices_setting)
            load_voices(files.voices)
            return files

        try:
            files = await asyncio.to_thread(check)
        except BackendUnavailable as e:
            return Health(False, self.name, "onnxruntime", reason=str(e))
        return Health(True, self.name, f"{files.describe()}; not loaded yet")

    # -- synthesis

    @contextmanager
    def _engine_run(self, force_alone: bool | None = None) -> Iterator[bool]:
        """One run on the engine: a worker slot, and whether it may use both cores (no other
        run is in flight and no other stream is open)."""
        with self._workers:
            with self._active_lock:
                alone = self._active == 0 and self._open <= 1
                self._active += 1
            try:
                yield alone if force_alone is None else force_alone
            finally:
                with self._active_lock:
                    self._active -= 1

    @contextmanager
    def _failing(self, stop: Any) -> Iterator[None]:
        """onnxruntime's own failures as EngineError, and a terminated run as a quiet end."""
        try:
            yield
        except (BadRequest, BackendUnavailable):
            raise
        except Exception as e:
            if stop.terminate:
                raise _Terminated from None
            raise EngineError(f"kokoro inference failed: {e}", backend=self.name) from e

    def _speak(self, req: TTSInput, stop: Any, ahead_ms: Callable[[], float | None],
               force_alone: bool | None = None) -> Iterator[AudioChunk]:
        loaded = self._load()
        voice = req.voice or self.default_voice()
        if voice is None:
            raise BackendUnavailable("no Kokoro voice", backend=self.name)
        style = loaded.style(voice)
        language = resolve_language(req.language, style.language, req.text)
        problem = loaded.g2p.unsupported(language)
        if problem is not None:
            raise BadRequest(f"voice {voice!r} cannot read this text: {problem}",
                             field="language" if req.language else "voice")
        batches = split_phonemes(loaded.g2p.phonemize(req.text, language))
        if not batches:
            return
        plan = self._plan(loaded, req.text, batches, language)
        engine = loaded.engine
        try:
            offset = 0  # samples of this segment before the batch
            for i, batch in enumerate(batches):
                last = i == len(batches) - 1
                ids = loaded.g2p.ids(batch)
                feeds = engine.feeds(ids, style.row(len(ids)), req.speed)
                planned = plan.batches[i] if plan is not None else None
                if not engine.windowed:
                    with self._engine_run(force_alone) as alone, self._failing(stop):
                        audio, durations = engine.whole(alone, feeds, stop)
                    edges = Edges(pause_after(batch), trim=self.trims_edges)
                    audio = np.concatenate([edges.feed(audio), edges.end()])
                    words = _placed(_words(planned, batch, durations, offset), edges, offset)
                    yield _chunk(audio, tuple(words), is_final=last)
                    offset += len(audio)
                    continue
                offset += yield from self._stream_batch(stop, ahead_ms, loaded, style, feeds,
                                                        len(ids), planned, batch, offset,
                                                        last, force_alone)
        except _Terminated:
            return  # the stream was cancelled mid-run: nothing more to say

    def _stream_batch(self, stop: Any, ahead_ms: Callable[[], float | None], loaded: _Loaded,
                      style: Style, feeds: dict[str, Any], tokens: int,
                      planned: list[tuple[str, int]] | None, batch: str, offset: int,
                      last: bool, force_alone: bool | None) -> Generator[AudioChunk, None, int]:
        """One batch: the voice's norm statistics (calibrated on first use), the front and the
        first window in one step, then a step per window. Returns the batch's length in
        samples."""
        engine = loaded.engine
        start, index = 0, 0
        with self._engine_run(force_alone) as alone, self._failing(stop):
            stats = engine.stats(style, tokens, alone, loaded.g2p.ids, stop)
            t0 = time.perf_counter()
            sentence = engine.start(alone, feeds, stats, stop)
            total = sentence.total
            end = WINDOWS.next_end(start, total, index, ahead_ms(), engine.pace.ms_per_frame(alone),
                              spent_ms=1000 * (time.perf_counter() - t0))
            audio = engine.decode(alone, sentence, start, end, stop)
        edges = Edges(pause_after(batch), trim=self.trims_edges)
        words = list(_words(planned, batch, sentence.durations, offset))
        first = True
        while True:
            pcm = edges.feed(audio)
            if end == total:
                pcm = np.concatenate([pcm, edges.end()])
            if len(pcm) or end == total:
                # A word rides with the chunk it starts in (the first chunk takes at least
                # one, so the segment's timings are known to be exact from its first chunk).
                # The batch's last word waits for the last chunk: its end may lie in the
                # silence cut there.
                placed = _placed(words, edges, offset, final=end == total)
                cut_ms = 1000 * (offset + edges.sent_samples) / SAMPLE_RATE_HZ
                mine = [w for w in placed[:-1] if w.start_ms < cut_ms]
                if first and not mine and len(placed) > 1:
                    mine = placed[:1]
                if end == total:
                    mine = placed
                words = words[len(mine):]
                first = False
                yield _chunk(pcm, tuple(mine), is_final=last and end == total)
            if end == total:
                return edges.sent_samples
            start, index = end, index + 1
            with self._engine_run(force_alone) as alone, self._failing(stop):
                end = WINDOWS.next_end(start, total, index, ahead_ms(),
                                  engine.pace.ms_per_frame(alone))
                audio = engine.decode(alone, sentence, start, end, stop)

    def _plan(self, loaded: _Loaded, text: str, batches: list[str],
              language: str) -> WordPlan | None:
        """Which text words each batch speaks; None leaves the segment to the estimate
        (Japanese text has no spaces to find its words by)."""
        if language == "ja":
            return None
        words = text.split()
        missing = list(dict.fromkeys(w for w in words if (language, w) not in loaded.counts))
        if missing:
            if len(loaded.counts) > 20_000:
                loaded.counts.clear()
            for word, ps in zip(missing, loaded.g2p.phonemize_words(missing, language),
                                strict=True):
                loaded.counts[(language, word)] = len(spoken_words(ps))
        return plan_words(words, [loaded.counts[(language, w)] for w in words], batches)

    async def synth_stream(self, req: TTSInput) -> AsyncIterator[AudioChunk]:
        produced = False
        self._open += 1
        try:
            async with aclosing(stream_steps(req, lambda stop, lead: self._speak(
                    req, stop, lead))) as chunks:
                async for chunk in chunks:
                    produced = True
                    yield chunk
        finally:
            self._open -= 1
        if not produced:
            raise NoAudioError(f"Kokoro made no audio for {req.text[:40]!r}", backend=self.name)


def _words(planned: list[tuple[str, int]] | None, batch: str, durations: np.ndarray | None,
           offset: int) -> tuple[WordTiming, ...]:
    if planned is None or durations is None:
        return ()
    return batch_timings(planned, batch, durations, offset_samples=offset,
                         rate_hz=SAMPLE_RATE_HZ) or ()


def _placed(words: Sequence[WordTiming], edges: Edges, offset: int, *,
            final: bool = True) -> list[WordTiming]:
    """Timings of the model's frames moved to the audio that went out: earlier by the silence
    cut before the batch's first sound; at the batch's end (`final`), ending at the latest
    where its audio ends (the last phoneme's silent hold is cut)."""
    shift_ms = 1000 * edges.lead_samples / SAMPLE_RATE_HZ
    first_ms = 1000 * offset / SAMPLE_RATE_HZ
    last_ms = 1000 * (offset + edges.sent_samples) / SAMPLE_RATE_HZ if final else float("inf")
    out = []
    for w in words:
        start = min(max(first_ms, w.start_ms - shift_ms), last_ms)
        out.append(replace(w, start_ms=start,
                           end_ms=max(start, min(w.end_ms - shift_ms, last_ms))))
    return out


def _chunk(audio: np.ndarray, words: tuple[WordTiming, ...], *, is_final: bool) -> AudioChunk:
    # Fixed gain, not per-window normalisation: windows and segments keep one loudness.
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    return AudioChunk(pcm, SAMPLE_RATE_HZ, is_final=is_final, words=words)


__all__ = ["KokoroAdapter"]
