"""Orchestrator seams network engines rely on: per-stream sessions, same-backend continuation
after an upstream dies, chunks at their own sample rate, and text cleaning before any engine."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.base import AdapterSession, AudioChunk, Capabilities, TTSAdapter, TTSInput
from adapters.errors import BadRequest, EngineError, UpstreamLost
from adapters.synthetic import tone
from server.core.events import AudioOut, Degraded
from server.core.stream import StreamSpec
from tests.sim import make_orchestrator
from tests.sim import spoken as speak

pytestmark = pytest.mark.looptime


class Recorder(TTSAdapter):
    """Speaks 60 ms per character in 100 ms chunks; records what it was asked and how."""

    name = "rec"
    capabilities = Capabilities(native_rate_hz=16_000, streams_sub_sentence=True)

    def __init__(self, fail_after_chunks: list[int] | None = None, rate_hz: int = 16_000) -> None:
        self.texts: list[str] = []
        self.via_session: list[str] = []
        self.sessions_opened = 0
        self.sessions_closed = 0
        self.fail_after = list(fail_after_chunks or [])
        self.rate_hz = rate_hz

    def open_session(self) -> AdapterSession | None:
        adapter = self

        class Session(AdapterSession):
            def synth_stream(self, req: TTSInput) -> AsyncIterator[AudioChunk]:
                adapter.via_session.append(req.text)
                return adapter.synth_stream(req)

            async def aclose(self) -> None:
                adapter.sessions_closed += 1

        self.sessions_opened += 1
        return Session()

    async def synth_stream(self, req: TTSInput) -> AsyncIterator[AudioChunk]:
        self.texts.append(req.text)
        fail_at = self.fail_after.pop(0) if self.fail_after else None
        total = len(req.text) * 60
        done, i = 0, 0
        while done < total:
            if fail_at is not None and i == fail_at:
                raise UpstreamLost("upstream a died", backend=self.name)
            ms = min(100, total - done)
            done += ms
            i += 1
            yield AudioChunk(tone(300, done, ms, self.rate_hz, False), self.rate_hz,
                             is_final=done >= total)


async def test_incremental_streams_use_one_session_closed_at_the_end() -> None:
    rec = Recorder()
    orch = make_orchestrator({"rec": rec}, max_segment_chars=40)
    text = "One sentence here. Another sentence there. And a third one to finish."
    stream, _ = await speak(orch, text, StreamSpec(incremental=True))
    assert stream.status == "completed"
    assert rec.sessions_opened == 1 and rec.sessions_closed == 1
    assert rec.via_session == rec.texts and len(rec.texts) >= 2


async def test_whole_text_streams_go_segment_by_segment() -> None:
    rec = Recorder()
    orch = make_orchestrator({"rec": rec})
    await speak(orch, "Hello there. How are you today?")
    assert rec.sessions_opened == 0 and rec.texts


async def test_upstream_lost_mid_segment_continues_on_the_same_backend_not_degraded() -> None:
    rec = Recorder(fail_after_chunks=[4])
    orch = make_orchestrator({"rec": rec, "backup": Recorder()}, fallback_backend="backup")
    text = "The quick brown fox jumps over the lazy dog near the river bank today."
    stream, events = await speak(orch, text, StreamSpec(incremental=True))
    assert stream.status == "completed"
    assert stream.backend == "rec" and not stream.degraded
    assert not any(isinstance(e, Degraded) for e in events)
    assert orch.totals["failovers"] == 0
    first, second = rec.texts[0], rec.texts[1]
    assert text.startswith(first)
    assert second and first.endswith(second) and len(second) < len(first)  # resumed mid-way
    assert rec.sessions_opened == 2 and rec.sessions_closed == 2  # reconnected once


async def test_upstream_lost_again_and_again_ends_in_a_failover() -> None:
    rec = Recorder(fail_after_chunks=[2, 1, 1, 1, 1])
    backup = Recorder()
    backup.name = "backup"
    orch = make_orchestrator({"rec": rec, "backup": backup}, fallback_backend="backup")
    stream, events = await speak(orch, "A long enough sentence so that it fails several times.")
    assert stream.status == "completed" and stream.degraded and stream.backend == "backup"
    assert len(rec.texts) == 4  # the first try and three same-backend continuations


async def test_chunks_are_resampled_from_their_own_rate() -> None:
    # The adapter declares 16 kHz but this voice speaks 22.05 kHz (Piper voices differ).
    rec = Recorder(rate_hz=22_050)
    orch = make_orchestrator({"rec": rec})
    text = "Twenty characters!!"
    stream, events = await speak(orch, text)
    audio_ms = sum(len(e.pcm) for e in events if isinstance(e, AudioOut)) / 48
    assert abs(audio_ms - len(text) * 60) < 30, audio_ms


async def test_control_characters_never_reach_the_engine() -> None:
    rec = Recorder()
    orch = make_orchestrator({"rec": rec})
    stream, _ = await speak(orch, "hi \x00there\x07 \ud800friend")
    assert stream.status == "completed"
    spoken = " ".join(rec.texts)
    assert "\x00" not in spoken and "\x07" not in spoken and "\ud800" not in spoken
    spoken.encode("utf-8")


async def test_nothing_speakable_is_a_bad_request_naming_input() -> None:
    rec = Recorder()
    orch = make_orchestrator({"rec": rec})
    with pytest.raises(BadRequest) as info:
        await speak(orch, "\x00\x01 \x02 ...")
    assert info.value.field == "input"
    assert rec.texts == []


async def test_a_plain_engine_error_still_fails_over() -> None:
    class Broken(Recorder):
        async def synth_stream(self, req: TTSInput) -> AsyncIterator[AudioChunk]:
            raise EngineError("boom", backend=self.name)
            yield  # pragma: no cover

    backup = Recorder()
    backup.name = "backup"
    orch = make_orchestrator({"rec": Broken(), "backup": backup}, fallback_backend="backup")
    stream, _ = await speak(orch, "Hello there friend.")
    assert stream.degraded and backup.texts


class EmptyEnding(Recorder):
    """A network-style engine: audio in pieces, then an empty final chunk (the body ended)."""

    async def synth_stream(self, req: TTSInput) -> AsyncIterator[AudioChunk]:
        self.texts.append(req.text)
        total, done = len(req.text) * 60, 0
        while done < total:
            ms = min(100, total - done)
            yield AudioChunk(tone(300, done, ms, self.rate_hz, False), self.rate_hz)
            done += ms
        yield AudioChunk(b"", self.rate_hz, is_final=True)


async def test_seams_are_crossfaded_even_when_the_final_chunk_is_empty() -> None:
    engine = EmptyEnding()
    orch = make_orchestrator({"rec": engine}, max_segment_chars=40, first_segment_chars=40)
    text = "A first sentence of some length here. And a second one that follows it."
    stream, events = await speak(orch, text)
    segments = [e for e in events if type(e).__name__ == "SegmentDone"]
    assert len(segments) == 2 and len(engine.texts) == 2
    made = sum(len(t) * 60 for t in engine.texts)
    audio_ms = sum(len(e.pcm) for e in events if isinstance(e, AudioOut)) / 48
    assert abs(audio_ms - (made - 50)) < 1, (audio_ms, made)  # one seam, overlapped 50 ms
