"""One Orpheus stream's decode loop: token text in, PCM chunks out, windows through the worker.

Two tasks per stream. The reader parses the completion text as it arrives and pushes whole
frames into the stream's `StreamingSnacDecoder`, whatever the decoder is doing; the decode
loop hands the ready window to the shared `DecodeWorker` and yields its new audio. While a
window waits for the worker (other streams' windows ahead of it), frames keep piling up, so
the next window covers them all: under load each decode carries more new frames and less
context, which is what lets several streams share two cores.

How many new frames a window waits for (`Pacing`): `first_frames` before the first audio;
then, when the listener's buffer is known (TTSInput.buffer_ms), as many as half of it covers
(waiting for n frames at the token rate spends about n * 85 ms of it): one new frame per
window when the buffer is low, up to `max_frames` when it has plenty to spare; when the buffer
is unknown, `steady_frames` (from the request's target chunk). On a batching device the
choice is `steady_frames` or, with a low buffer, 1, and every window is capped at it, so that
the streams' windows have equal lengths and decode in one call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass

from adapters.errors import NoAudioError
from adapters.orpheus.tokens import SAMPLES_PER_FRAME, TokenParser, split_frames
from adapters.orpheus.windows import StreamingSnacDecoder
from adapters.orpheus.worker import DecodeWorker

# A wrong upstream (a chat model, a misrouted URL) streams text forever; give up early.
MAX_PIECES_WITHOUT_AUDIO = 256
# Frames parsed but not yet decoded before the reader stops reading (TCP then holds the rest).
MAX_BACKLOG_FRAMES = 256
# A window that takes everything ready is still cut so that the windows queued at the worker,
# this one included, decode within ROUND_BUDGET_MS on its lanes at its recent pace (a window
# is never cut under MIN_WINDOW_MS: smaller windows cost more per frame, which an overloaded
# machine can afford least). At a normal pace the decoder's max window cuts first; on an
# overloaded machine windows would otherwise grow until each stream waits seconds for its
# turn, which the orchestrator rightly calls a stall.
ROUND_BUDGET_MS = 2000.0
MIN_WINDOW_MS = 400.0
CONTEXT_FRAMES = 3  # a window's frames around its new ones: 1 left, 2 of lookahead


FRAME_MS = 1000 * SAMPLES_PER_FRAME / 24_000


@dataclass(frozen=True)
class Pacing:
    """How many new frames each window of a stream waits for (see the module doc)."""

    first_frames: int = 1
    steady_frames: int = 4  # when the listener's buffer is unknown
    max_frames: int = 13  # the most a window waits for (the decoder's max window - context)
    buffer_ms: Callable[[], float] | None = None  # the listener's buffer, live
    equal_windows: bool = False  # batching device: windows of `steady_frames` (or 1), capped

    def want(self, started: bool) -> int:
        """New frames to wait for before the next window."""
        if not started:
            return self.first_frames
        if self.buffer_ms is None:
            return self.steady_frames
        affordable = self.buffer_ms() / 2 / FRAME_MS
        if self.equal_windows:
            return self.steady_frames if affordable >= self.steady_frames else 1
        return int(max(1, min(self.max_frames, affordable)))

    def cap(self, want: int) -> int | None:
        """The most new frames in the window (None: everything ready)."""
        return want if self.equal_windows else None


async def decode_stream(
    pieces: AsyncIterator[str],
    *,
    decoder: StreamingSnacDecoder,
    worker: DecodeWorker,
    pacing: Pacing,
    backend: str,
) -> AsyncIterator[tuple[bytes, bool]]:
    """(pcm, is_final) for the Orpheus token text in `pieces`; the last item is final.

    Raises NoAudioError when the text holds no speech, and whatever the token source raises.
    Closing the iterator cancels the reader (closing the upstream request) and drops the
    window waiting in the worker.
    """
    parser = TokenParser()
    changed = asyncio.Event()  # frames arrived, or the reader finished
    room = asyncio.Event()  # the backlog drained below its bound
    room.set()

    async def read() -> None:
        without_audio = 0
        try:
            async with aclosing(pieces) as it:  # type: ignore[type-var]
                async for piece in it:
                    for frame in split_frames(parser.feed(piece)):
                        decoder.push(frame)
                    changed.set()
                    if parser.stats.audio_tokens == 0:
                        without_audio += 1
                        if without_audio > MAX_PIECES_WITHOUT_AUDIO:
                            raise NoAudioError(no_audio_message(
                                parser, "gave up: upstream streams text, not Orpheus audio "
                                "tokens"), backend=backend)
                    while decoder.pending_samples >= MAX_BACKLOG_FRAMES * SAMPLES_PER_FRAME:
                        room.clear()
                        await room.wait()
        finally:
            changed.set()

    reader = asyncio.create_task(read(), name="orpheus-tokens")
    try:
        started = False
        while True:
            frames = pacing.want(started)
            while decoder.ready_samples < frames * SAMPLES_PER_FRAME and not reader.done():
                changed.clear()
                await changed.wait()
                frames = min(frames, pacing.want(started))  # the buffer may have run low
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                reader.result()  # the token source failed: stop now, nothing more is coming
            if decoder.ready_samples < frames * SAMPLES_PER_FRAME:
                break  # the reader finished: the tail is flushed below
            window = decoder.plan(window_cap(pacing, frames, worker))
            assert window is not None
            audio = await worker.decode(window.frames,
                                        new_frames=window.new_samples / SAMPLES_PER_FRAME)
            pcm = decoder.complete(window, audio)
            room.set()
            started = True
            yield pcm, False
        reader.result()  # the token source's error, if it failed
        parser.finish()
        if decoder.frames_received == 0:
            raise NoAudioError(no_audio_message(parser, "upstream finished"), backend=backend)
        tail = bytearray()
        while (window := decoder.plan_flush()) is not None:
            audio = await worker.decode(window.frames,
                                        new_frames=window.new_samples / SAMPLES_PER_FRAME)
            tail += decoder.complete(window, audio)
        yield bytes(tail), True
    finally:
        if not reader.done():
            reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


def window_cap(pacing: Pacing, frames: int, worker: DecodeWorker) -> int | None:
    """The most new frames the next window may take (at least the `frames` it waited for)."""
    cap = pacing.cap(frames)
    if cap is not None:
        return cap
    budget = max(MIN_WINDOW_MS, ROUND_BUDGET_MS * worker.lanes / (worker.waiting + 1))
    within = worker.frames_within(budget)
    return None if within is None else max(frames, within - CONTEXT_FRAMES)


def no_audio_message(parser: TokenParser, what: str) -> str:
    s = parser.stats
    return (f"{what} without speech: {s.audio_tokens} audio tokens, {s.frames} good frames, "
            f"{s.bad_frames} bad frames, {s.tail_tokens_dropped} trailing tokens")


__all__ = ["MAX_BACKLOG_FRAMES", "MAX_PIECES_WITHOUT_AUDIO", "Pacing", "decode_stream",
           "no_audio_message"]
