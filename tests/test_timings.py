"""Word timings: carried exactly from engines that know them, estimated for the rest, placed
on the response's timeline through resampling, time-stretch and seams; what was heard."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator

import numpy as np
import pytest

from adapters.base import AudioChunk, Capabilities, TTSAdapter, TTSInput, WordTiming
from adapters.synthetic import SyntheticAdapter, SyntheticKnobs, tone
from server.core.events import AudioOut, SegmentDone, WordMark, Words
from server.core.stream import StreamSpec
from server.core.timings import SegmentClock, heard_text
from tests.sim import make_orchestrator, spoken

# ------------------------------------------------------------------------------ the clock


def chunk(ms: float, words: tuple[WordTiming, ...] = (), final: bool = False) -> AudioChunk:
    return AudioChunk(bytes(int(ms * 48)), 24_000, is_final=final, words=words)


def test_exact_words_are_moved_and_scaled() -> None:
    clock = SegmentClock("a bb", origin_ms=1000, scale=0.5, pace_ms_per_char=60)
    marks = clock.chunk(chunk(400, (WordTiming("a", 0, 100), WordTiming("bb", 150, 400))))
    assert marks == [WordMark("a", 1000, 1050, True), WordMark("bb", 1075, 1200, True)]
    assert clock.finish() == []


def test_estimates_cover_the_segment_by_length_and_never_go_back() -> None:
    text = "one three fivefive seven"
    clock = SegmentClock(text, origin_ms=500, scale=1.0, pace_ms_per_char=60)
    marks: list[WordMark] = []
    for i in range(12):  # a streaming engine: 100 ms chunks
        marks += clock.chunk(chunk(100, final=i == 11))
    marks += clock.finish()
    assert [m.text for m in marks] == text.split()
    assert not any(m.exact for m in marks)
    assert marks[0].start_ms == 500
    assert abs(marks[-1].end_ms - (500 + 1200)) < 1e-6  # the whole segment, no more
    for a, b in zip(marks, marks[1:], strict=False):
        assert a.start_ms <= a.end_ms <= b.start_ms + 1e-9
    longest = max(marks, key=lambda m: m.end_ms - m.start_ms)
    assert longest.text == "fivefive"


def test_estimates_for_a_whole_sentence_chunk_use_its_real_length() -> None:
    clock = SegmentClock("Hello there", origin_ms=0, scale=1.0, pace_ms_per_char=60)
    marks = clock.chunk(chunk(2400, final=True)) + clock.finish()
    assert [m.text for m in marks] == ["Hello", "there"]
    assert abs(marks[-1].end_ms - 2400) < 1e-6 and abs(marks[0].end_ms - 1200) < 1e-6


def test_heard_text_is_the_fully_heard_prefix() -> None:
    marks = [WordMark("a", 0, 100, True), WordMark("b", 100, 300, True),
             WordMark("c", 300, 500, True)]
    assert heard_text(marks, 0) == ""
    assert heard_text(marks, 299) == "a"
    assert heard_text(marks, 300) == "a b"
    assert heard_text(marks, 10_000) == "a b c"


# ------------------------------------------------------------------------------ through the pipeline


async def run(orch, text: str, spec: StreamSpec | None = None):  # noqa: ANN001, ANN201
    stream, events = await spoken(orch, text, spec)
    marks = [m for ev in events if isinstance(ev, Words) for m in ev.words]
    audio_ms = sum(len(ev.pcm) for ev in events if isinstance(ev, AudioOut)) / 48
    return stream, events, marks, audio_ms


@pytest.mark.looptime
@pytest.mark.parametrize("rate_hz,speed", [(24_000, 1.0), (16_000, 1.0), (16_000, 1.5),
                                           (22_050, 0.75)])
async def test_synthetic_timings_exact_to_a_millisecond(rate_hz: int, speed: float) -> None:
    # native_speed=False: the pipeline time-stretches, so marks must be scaled by 1/speed.
    adapter = SyntheticAdapter(SyntheticKnobs(rate_hz=rate_hz, native_speed=False, chunk_ms=100))
    # One segment, so that positions follow the characters exactly (seams are tested below).
    orch = make_orchestrator({"synthetic": adapter}, max_segment_chars=400,
                             first_segment_chars=400)
    text = "Timings must survive resampling and stretching exactly"
    _, _, marks, audio_ms = await run(orch, text, StreamSpec(speed=speed))
    per_char = 60.0 / speed  # the synthetic engine: 60 ms per character, then stretched
    expected = []
    pos = 0
    for word in text.split():
        i = text.index(word, pos)
        expected.append((word, i * per_char, (i + len(word)) * per_char))
        pos = i + len(word)
    assert [m.text for m in marks] == [w for w, _, _ in expected]
    for m, (_, start, end) in zip(marks, expected, strict=True):
        assert m.exact
        assert abs(m.start_ms - start) <= 1.0 and abs(m.end_ms - end) <= 1.0, (m, start, end)
    assert abs(marks[-1].end_ms - audio_ms) < 0.02 * audio_ms  # atempo keeps the length


def tone_takeover_ms(pcm: bytes, f_old: float, f_new: float, around_ms: float) -> float:
    """Where, near `around_ms`, the new segment's tone becomes louder than the old one's
    (5 ms steps): an estimate of the seam from the audio alone."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    win = 240  # 10 ms at 24 kHz
    t = np.arange(win) / 24_000

    def power(seg: np.ndarray, f: float) -> float:
        return abs(np.dot(seg, np.exp(-2j * np.pi * f * t)))

    for ms in np.arange(max(0.0, around_ms - 150), around_ms + 150, 5.0):
        i = int(ms * 24)
        seg = x[i:i + win]
        if len(seg) == win and power(seg, f_new) > power(seg, f_old):
            return float(ms) + 5.0  # the window's centre
    raise AssertionError("no takeover found")


def synthetic_freq(text: str) -> float:
    return 120.0 + int(hashlib.sha1(text.encode()).hexdigest()[:4], 16) % 400


@pytest.mark.looptime
async def test_segments_follow_each_other_through_the_seams() -> None:
    adapter = SyntheticAdapter(SyntheticKnobs(chunk_ms=100))
    orch = make_orchestrator({"synthetic": adapter}, max_segment_chars=60)
    text = ("The first sentence is here. The second one follows it closely. "
            "A third one ends the little story today.")
    _, events, marks, audio_ms = await run(orch, text)
    segments = [ev for ev in events if isinstance(ev, SegmentDone)]
    assert len(segments) >= 3
    assert " ".join(m.text for m in marks) == " ".join(text.split())
    assert abs(marks[-1].end_ms - audio_ms) <= 1.0
    # Each segment's first word starts where the audio says the segment starts: the tone of
    # the new segment takes over there (within the crossfade, at most 50 ms long).
    pcm = b"".join(ev.pcm for ev in events if isinstance(ev, AudioOut))
    k = 0
    for prev, seg in zip(segments, segments[1:], strict=False):
        k += len(prev.text.split())
        first = marks[k]
        takeover = tone_takeover_ms(pcm, synthetic_freq(prev.text), synthetic_freq(seg.text),
                                    first.start_ms)
        assert first.start_ms - 5 <= takeover <= first.start_ms + 40, (first, takeover)


class Untimed(TTSAdapter):
    """A sentence engine that knows nothing of its words (like Coqui or XTTS)."""

    name = "untimed"
    capabilities = Capabilities(native_rate_hz=22_050)

    async def synth_stream(self, req: TTSInput) -> AsyncIterator[AudioChunk]:
        ms = 55.0 * len(req.text)
        yield AudioChunk(tone(200, 0, ms, 22_050, False), 22_050, is_final=True)


@pytest.mark.looptime
async def test_estimated_timings_sum_to_the_audio_length() -> None:
    orch = make_orchestrator({"untimed": Untimed()}, max_segment_chars=50)
    text = "Estimated words are spread by length. Every segment is covered by its words."
    _, _, marks, audio_ms = await run(orch, text)
    assert " ".join(m.text for m in marks) == text
    assert not any(m.exact for m in marks)
    starts = [m.start_ms for m in marks]
    assert starts == sorted(starts)
    assert abs(marks[-1].end_ms - audio_ms) <= 0.01 * audio_ms


# ------------------------------------------------------------------------------ heard_text over WS


async def test_cancel_reports_the_heard_prefix_matching_the_played_time(serve) -> None:
    srv = await serve(tts_backend="synthetic", synthetic_rtf=3.0)
    text = ("One two three four five six seven eight nine ten eleven twelve thirteen "
            "fourteen fifteen sixteen seventeen eighteen nineteen twenty.")
    async with srv.http.ws_connect(srv.url.replace("http", "ws") + "/v1/audio/speech/ws") as ws:
        await ws.receive_json()
        await ws.send_json({"type": "input_text.append", "text": text})
        await ws.send_json({"type": "input_text.done"})
        words = []
        audio_ms = 0.0
        while audio_ms < 1500:  # let about 1.5 s of audio out, reporting playback as we go
            msg = await ws.receive(timeout=10)
            if msg.type.name == "BINARY":
                audio_ms += len(msg.data) / 48
            elif json.loads(msg.data)["type"] == "response.word":
                words.append(json.loads(msg.data))
        await ws.send_json({"type": "playback.report", "played_ms": 1200})
        await asyncio.sleep(0.05)
        await ws.send_json({"type": "response.cancel"})
        ended = {}
        while "response.done" not in ended:
            msg = await ws.receive(timeout=10)
            if msg.type.name == "TEXT":
                ev = json.loads(msg.data)
                ended[ev["type"]] = ev
    cleared, done = ended["output_audio_buffer.cleared"], ended["response.done"]
    heard = cleared["heard_text"]
    assert heard == done["heard_text"]
    assert heard and text.startswith(heard)
    played = cleared["played_ms"]
    assert 1200 <= played < 1500
    # exactly the words whose end had been played
    expected = " ".join(w["text"] for w in words if w["end_ms"] <= played)
    assert heard == expected
