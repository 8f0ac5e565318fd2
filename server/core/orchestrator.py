"""The orchestrator: text in, paced 24 kHz audio out, for any backend and any transport.

It opens streams (server/core/stream.py) on the requested backend or, when that one cannot
start, on the fallback; admits them (server/core/admission.py); shares each engine between
them earliest-deadline-first (server/core/scheduler.py); and keeps the figures: metrics,
totals, and the live streams for /ws/perf. Rate control, stall detection, retry, failover,
barge-in and all measurements live in the core, not in adapters.
"""

from __future__ import annotations

import logging
from typing import Any

from adapters.base import TTSAdapter
from adapters.errors import BackendUnavailable, TTSError
from dsp.textfront import (
    CodePolicy,
    DateOrder,
    EmojiPolicy,
    FrontOptions,
    Lexicon,
    LexiconError,
    LexiconFile,
)
from server.core.admission import Admission
from server.core.backends import BackendPool
from server.core.events import BufferObserver
from server.core.listener import WallClockObserver
from server.core.scheduler import EdfGate
from server.core.stream import Stream, StreamSpec, voiced_tags
from server.core.voicebook import Lease, VoiceBook
from server.metrics import Metrics
from server.settings_store import SettingsStore

log = logging.getLogger("morpheus.orchestrator")


class Orchestrator:
    """Opens and owns the streams of one app; shares engines fairly between them."""

    def __init__(self, store: SettingsStore, backends: BackendPool, metrics: Metrics,
                 voices: VoiceBook | None = None) -> None:
        self.store = store
        self.backends = backends
        self.metrics = metrics
        self.voices = voices  # stored voices: resolved here, once, for every face
        self._leases: dict[int, Lease] = {}  # id(stream) -> its hold on a stored voice
        self.streams: dict[str, Stream] = {}
        self.totals = {"underflows": 0, "failovers": 0, "barge_ins": 0, "requests": 0}
        self._gates: dict[int, EdfGate] = {}
        self._lexicon: LexiconFile | None = None  # LEXICON_FILE, re-read when it changes
        self.admission = Admission(lambda: self.settings, metrics, lambda: len(self.streams))
        metrics.track_states(lambda: [(s.backend, s.rate.state.value)
                                      for s in self.streams.values()])

    @property
    def settings(self) -> Any:
        return self.store.current

    @property
    def draining(self) -> bool:
        """Shutting down: no new streams (server/lifecycle.py)."""
        return self.admission.draining

    @draining.setter
    def draining(self, value: bool) -> None:
        self.admission.draining = value

    # -- engines

    def gate(self, adapter: TTSAdapter) -> EdfGate:
        g = self._gates.get(id(adapter))
        if g is None:
            g = self._gates[id(adapter)] = EdfGate(adapter.concurrency)
        return g

    def engine_busy(self, adapter: TTSAdapter) -> bool:
        """Whether other streams hold or wait for a limited engine."""
        gate = self.gate(adapter)
        others = any(st.adapter is adapter for st in self.streams.values())
        return gate.slots is not None and (gate.busy > 0 or others)

    def text_options(self, spec: StreamSpec, adapter: TTSAdapter, voice: str) -> FrontOptions:
        """How the text front end treats a stream's text: the settings, the request (its
        `normalize` and lexicon entries) and what the engine voices and takes."""
        s = self.settings
        caps = adapter.capabilities
        normalize = spec.normalize
        if normalize is None:  # "auto": ours, unless the engine reads such text well itself
            normalize = s.text_normalization and not caps.normalizes_text
        language = spec.language or next(
            (v.language for v in adapter.voices() if v.id == voice), None) or "en"
        return FrontOptions(
            normalize=normalize, language=language, emoji=EmojiPolicy(s.text_emoji),
            code=CodePolicy(s.text_code_blocks), date_order=DateOrder(s.text_date_order),
            list_numbers=s.text_list_numbers, voiced_tags=voiced_tags(caps),
            phonemes=True, lexicon=self.lexicon().merge(spec.lexicon))

    def lexicon(self) -> Lexicon:
        """LEXICON_FILE's entries as the file stands now; the last good ones (and a log line)
        when an edit made it unreadable."""
        path = self.settings.lexicon_file
        if not path:
            self._lexicon = None
            return Lexicon()
        if self._lexicon is None or str(self._lexicon.path) != str(path):
            self._lexicon = LexiconFile(path)
        try:
            return self._lexicon.get()
        except (OSError, LexiconError) as e:
            log.error("LEXICON_FILE %s: %s (keeping the last good entries)", path, e)
            return self._lexicon.last

    async def fallback_for(self, backend: str, error: TTSError) -> tuple[str, TTSAdapter]:
        """The fallback backend to continue a stream of `backend` on, ready; `error` is raised
        when there is none (not set, the same backend, not enabled, or not loadable)."""
        target = self.settings.fallback_backend
        if not target or target == backend or not self.backends.enabled(target):
            raise error
        try:
            fallback = await self.backends.ready(target)
        except TTSError:
            raise error from None
        self.count_failover(backend, target)
        return target, fallback

    # -- opening streams

    async def open(self, spec: StreamSpec, observer: BufferObserver | None = None) -> Stream:
        """Admit and start a stream; raises BadRequest, Busy or BackendUnavailable. A stored
        voice's id in `spec.voice` becomes its backend, engine voice and defaults here."""
        lease = None
        if self.voices is not None:
            default = self.settings.default_voice
            if not spec.voice and not spec.backend and default and self.voices.knows(default):
                spec = StreamSpec(**{**spec.__dict__, "voice": default})  # DEFAULT_VOICE stored
            if spec.voice:
                spec, lease = self.voices.apply(spec)
        try:
            stream = await self._open(spec, observer)
        except BaseException:
            if lease is not None:
                lease.release()
            raise
        if lease is not None:
            self._leases[id(stream)] = lease
        return stream

    async def _open(self, spec: StreamSpec, observer: BufferObserver | None) -> Stream:
        s = self.settings
        name = spec.backend or s.tts_backend
        self.backends.validate_name(name)
        try:
            adapter = await self.backends.ready(name)
        except BackendUnavailable as e:
            fb = s.fallback_backend
            if not fb or fb == name or not self.backends.enabled(fb):
                raise
            log.warning("backend %s unavailable (%s); starting on %s", name, e, fb)
            adapter = await self.backends.ready(fb)
            self.count_failover(name, fb)
            spec = StreamSpec(**{**spec.__dict__, "voice": None, "reference_audio": None})
            stream = await self._start(spec, adapter, observer)
            stream.degraded = True
            return stream
        return await self._start(spec, adapter, observer)

    def resolve_voice(self, adapter: TTSAdapter, voice: str | None) -> tuple[str | None, bool]:
        """(effective voice, fell_back): unknown voices fall back to the default, as Orpheus did;
        a stored voice's id is kept (it is resolved when a stream opens)."""
        if voice and self.voices is not None and self.voices.knows(voice):
            return voice, False
        return self._engine_voice(adapter, voice)

    def _engine_voice(self, adapter: TTSAdapter, voice: str | None) -> tuple[str | None, bool]:
        if voice and adapter.accepts_voice(voice):
            return voice, False
        ids = {v.id for v in adapter.voices()}
        default = self.settings.default_voice if self.settings.default_voice in ids else adapter.default_voice()
        return default, bool(voice)

    async def _start(self, spec: StreamSpec, adapter: TTSAdapter,
                     observer: BufferObserver | None) -> Stream:
        await self.admission.admit()
        if spec.reference_audio and adapter.capabilities.clones:
            voice: str | None = spec.voice  # a clone: the engine speaks the reference clip
        else:
            voice, _ = self._engine_voice(adapter, spec.voice)  # the library already spoke
        observer = observer or WallClockObserver(self.settings.playback_buffer_ms)
        stream = Stream(self, spec, adapter, observer, voice)
        self.streams[stream.id] = stream
        self.totals["requests"] += 1
        self.metrics.active.labels(stream.backend).inc()
        return stream

    # -- what streams report

    def first_audio(self, stream: Stream) -> None:
        assert stream.ttft_ms is not None
        self.metrics.ttft_ms.labels(stream.backend, stream.spec.transport).observe(stream.ttft_ms)
        log.info("first audio", extra={"request_id": stream.id, "backend": stream.backend,
                                       "ttft_ms": round(stream.ttft_ms, 1),
                                       "chunk_size": stream.rate.chunk_size})

    def count_underflow(self, backend: str) -> None:
        self.metrics.underflow.labels(backend).inc()
        self.totals["underflows"] += 1

    def count_failover(self, from_backend: str, to_backend: str) -> None:
        self.metrics.failover.labels(from_backend, to_backend).inc()
        self.totals["failovers"] += 1

    def moved(self, stream: Stream, old: str, new: str) -> None:
        """`stream` now speaks on `new` (a failover mid-stream)."""
        self.metrics.active.labels(old).dec()
        self.metrics.active.labels(new).inc()

    def finished(self, stream: Stream) -> None:
        """`stream` ended (Stream.aclose): free its slot and count its outcome."""
        lease = self._leases.pop(id(stream), None)
        if lease is not None:
            lease.release()
        if self.streams.pop(stream.id, None) is None:
            return
        m = self.metrics
        m.active.labels(stream.backend).dec()
        m.requests.labels(stream.backend, stream.status).inc()
        rtf = stream.rtf()
        if rtf is not None and stream.status == "completed":
            m.stream_rtf.labels(stream.backend).observe(rtf)
        log.info("stream end", extra={"request_id": stream.id, "backend": stream.backend,
                                      "status": stream.status, "audio_ms": round(stream.audio_ms),
                                      "underflows": stream.underflows})
        self.admission.grant()

    def note_barge_in(self, backend: str) -> None:
        self.metrics.barge_in.labels(backend).inc()
        self.totals["barge_ins"] += 1

    # -- looking on

    def get(self, stream_id: str) -> Stream | None:
        return self.streams.get(stream_id)

    def snapshot(self) -> dict[str, Any]:
        return {
            "active_streams": len(self.streams), "queued": self.admission.queued,
            "streams": [s.snapshot() for s in self.streams.values()],
            "totals": dict(self.totals), "backend": self.settings.tts_backend,
        }

    async def aclose(self) -> None:
        for stream in list(self.streams.values()):
            stream.interrupt()
            await stream.aclose()


__all__ = ["Orchestrator"]
