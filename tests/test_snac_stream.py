"""adapters/snac_stream.py: a stream's windows through the shared worker, against today's
in-place decoder and a whole-utterance decode (SNAC's noise disabled so decodes compare)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adapters.errors import NoAudioError
from adapters.orpheus.stream import Pacing, decode_stream
from adapters.orpheus.tokens import SAMPLES_PER_FRAME
from adapters.orpheus.windows import StreamingSnacDecoder
from adapters.orpheus.worker import DecodeWorker
from tests.extras import torch_or_skip
from tests.snac_fixture import frames_to_token_text, random_frames, write_snac_checkpoint

torch = torch_or_skip()


class Recording:
    """A runner that remembers the length of every window it decodes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.kind, self.device = inner.kind, inner.device
        self.lengths: list[int] = []

    def decode(self, frames: np.ndarray) -> np.ndarray:
        self.lengths += [frames.shape[1]] * frames.shape[0]
        return self.inner.decode(frames)


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from adapters.orpheus.model import load_snac
    from adapters.orpheus.runtime import TorchSnac

    path: Path = write_snac_checkpoint(tmp_path_factory.mktemp("snac_q"), silent_noise=True,
                                       legacy_keys=False)
    return TorchSnac(load_snac(path, "cpu"))


@pytest.fixture
async def worker(quiet: Any) -> AsyncIterator[Callable[..., DecodeWorker]]:
    made: list[DecodeWorker] = []

    def make(*, batch: bool = False) -> DecodeWorker:
        made.append(DecodeWorker(Recording(quiet), batch=batch))
        return made[-1]

    yield make
    for w in made:
        await w.aclose()


async def paced_tokens(frames: list[tuple[int, ...]], decoder: StreamingSnacDecoder,
                       pacing: Pacing | None) -> AsyncIterator[str]:
    """One frame's tokens per piece; with `pacing`, the next frame waits while the frames the
    decode loop waits for are ready (so windows are what the pacing asks, never piled up)."""
    for text in ("".join(frames_to_token_text([f])) for f in frames):
        # polls the decoder's state (no event to wait on without hooks in the product code)
        while pacing is not None and decoder.ready_samples >= SAMPLES_PER_FRAME * (  # noqa: ASYNC110
                pacing.want(decoder.samples_emitted > 0)):
            await asyncio.sleep(0.001)
        yield text


async def stream_pcm(worker: DecodeWorker, frames: list[tuple[int, ...]], pacing: Pacing, *,
                     drain: bool = True, lookahead: int | None = None) -> bytes:
    decoder = StreamingSnacDecoder(start_lookahead_frames=lookahead)
    out = bytearray()
    pieces = paced_tokens(frames, decoder, pacing if drain else None)
    async for pcm, _final in decode_stream(pieces,
                                           decoder=decoder, worker=worker, pacing=pacing,
                                           backend="snac_llamacpp"):
        out += pcm
    return bytes(out)


def todays_decoder(model: Any, frames: list[tuple[int, ...]]) -> bytes:
    """The in-place decoder, frames one by one: Orpheus' one new frame per 4-frame window."""
    decoder = StreamingSnacDecoder(model)
    out = bytearray()
    for frame in frames:
        decoder.push(frame)
        out += decoder.decode_ready()
    return bytes(out + decoder.flush())


def whole(model: Any, frames: list[tuple[int, ...]]) -> np.ndarray:
    return model.decode(np.asarray(frames, dtype=np.int64)[None])[0]


def as_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, "<i2").astype(np.float32) / 32767.0


async def test_one_new_frame_per_window_is_todays_decoder_exactly(worker, quiet) -> None:
    frames = random_frames(10, seed=21)
    w = worker()
    pcm = await stream_pcm(w, frames, Pacing(first_frames=1, steady_frames=1))
    assert pcm == todays_decoder(quiet, frames)
    assert w.runner.lengths[1:-1] == [4] * (len(w.runner.lengths) - 2)  # 1 left + 1 + 2 right


async def test_three_new_frames_share_a_six_frame_window(worker, quiet) -> None:
    frames = random_frames(14, seed=22)
    w = worker()
    pcm = await stream_pcm(w, frames, Pacing(first_frames=1, steady_frames=3))
    streamed = as_float(pcm)
    assert streamed.size == 14 * SAMPLES_PER_FRAME
    # frame 0 alone (3 frames: no left context yet), then 1 left + 3 new + 2 lookahead
    assert w.runner.lengths[0] == 3 and w.runner.lengths[1:4] == [6, 6, 6]
    decoded = sum(w.runner.lengths)
    assert decoded <= 0.6 * sum([3] + [4] * 13)  # well under today's frames decoded
    # the same seam budget as today's decoder against the whole utterance
    reference = whole(quiet, frames)
    scale = float(np.abs(reference).max())
    ours = float(np.abs(streamed - reference).max()) / scale
    todays = float(np.abs(as_float(todays_decoder(quiet, frames)) - reference).max()) / scale
    assert ours < 0.1 and todays < 0.1, (ours, todays)


def test_pacing_follows_the_listeners_buffer() -> None:
    buffer = [0.0]
    pacing = Pacing(first_frames=2, steady_frames=4, max_frames=13, buffer_ms=lambda: buffer[0])
    assert pacing.want(False) == 2  # first audio: as configured, whatever the buffer
    wants = {}
    for buffer[0] in (0.0, 100.0, 400.0, 1000.0, 5000.0):
        wants[buffer[0]] = pacing.want(True)
    assert wants == {0.0: 1, 100.0: 1, 400.0: 2, 1000.0: 5, 5000.0: 13}
    assert pacing.cap(5) is None  # one by one: everything ready goes in the window
    assert Pacing(steady_frames=4).want(True) == 4  # buffer unknown: the target chunk
    batching = Pacing(steady_frames=4, buffer_ms=lambda: buffer[0], equal_windows=True)
    buffer[0] = 5000.0
    assert batching.want(True) == 4 and batching.cap(4) == 4  # equal windows to batch
    buffer[0] = 300.0
    assert batching.want(True) == 1


async def test_a_listener_with_buffer_to_spare_gets_wider_windows(worker, quiet) -> None:
    frames = random_frames(16, seed=25)
    w = worker()
    pcm = await stream_pcm(w, frames, Pacing(first_frames=1, steady_frames=1,
                                             buffer_ms=lambda: 1000.0))
    assert len(pcm) == 2 * 16 * SAMPLES_PER_FRAME
    assert w.runner.lengths[1:3] == [8, 8]  # 1 left + 5 new + 2 lookahead


async def test_first_window_keeps_low_latency_lookahead(worker, quiet) -> None:
    frames = random_frames(6, seed=23)
    w = worker()
    decoder = StreamingSnacDecoder(start_lookahead_frames=1)
    pacing = Pacing(first_frames=1, steady_frames=4)
    stream = decode_stream(paced_tokens(frames, decoder, pacing), decoder=decoder, worker=w,
                           pacing=pacing,
                           backend="snac_llamacpp")
    async with aclosing(stream) as it:
        first, final = await it.__anext__()
        assert len(first) == 2 * SAMPLES_PER_FRAME and not final
        assert decoder.frames_received == 2  # the frame and one of lookahead, no more
        rest = [pcm async for pcm, _ in it]
    assert len(first) + sum(map(len, rest)) == 2 * 6 * SAMPLES_PER_FRAME


async def test_frames_that_pile_up_behind_the_worker_go_in_one_window(worker, quiet) -> None:
    """While a window waits for the worker, the reader keeps parsing: the next window takes
    everything ready, not one frame."""
    frames = random_frames(20, seed=24)
    w = worker()
    pcm = await stream_pcm(w, frames, Pacing(first_frames=1, steady_frames=1), drain=False)
    assert len(pcm) == 2 * 20 * SAMPLES_PER_FRAME
    assert max(w.runner.lengths) > 4  # some window carried several new frames


async def test_batched_streams_equal_their_one_by_one_decodes(worker, quiet) -> None:
    """Four streams through one batching worker: each stream's audio is what today's decoder
    gives for it alone, within float tolerance."""
    w = worker(batch=True)
    streams = [random_frames(8, seed=30 + i) for i in range(4)]
    outs = await asyncio.gather(*(stream_pcm(w, f, Pacing(first_frames=1, steady_frames=1,
                                                          equal_windows=True)) for f in streams))
    assert w.stats().batches < w.stats().windows  # windows of several streams shared calls
    for frames, pcm in zip(streams, outs, strict=True):
        ref = np.frombuffer(todays_decoder(quiet, frames), "<i2").astype(np.int32)
        got = np.frombuffer(pcm, "<i2").astype(np.int32)
        assert got.shape == ref.shape
        assert int(np.abs(got - ref).max()) <= 3


async def test_closing_closes_the_token_source_and_drops_the_window(quiet) -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[str]:
        try:
            for frame in random_frames(10_000, seed=5):
                yield "".join(frames_to_token_text([frame]))
                await asyncio.sleep(0.001)
        finally:
            closed.set()

    w = DecodeWorker(Recording(quiet), batch=False)
    try:
        stream = decode_stream(endless(), decoder=StreamingSnacDecoder(), worker=w,
                               pacing=Pacing(1, 1), backend="snac_llamacpp")
        async with aclosing(stream) as it:
            await it.__anext__()
        assert closed.is_set()
        decoded = w.stats().windows
        await asyncio.sleep(0.3)
        assert w.stats().windows <= decoded + 1  # at most the window that was in the model
    finally:
        await w.aclose()


async def test_text_without_speech_is_an_error(worker) -> None:
    async def chat() -> AsyncIterator[str]:
        for word in ("Sure", "! Here", " is", " your speech."):
            yield word

    with pytest.raises(NoAudioError, match="without speech"):
        async for _ in decode_stream(chat(), decoder=StreamingSnacDecoder(), worker=worker(),
                                     pacing=Pacing(), backend="snac_llamacpp"):
            pass
