"""Piper cut at its decoder: the cut is found by structure, a sentence streams window by window,
and the windows join into the same audio the whole graph makes (the real joe voice, without
sampling noise so that the two runs can be compared)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from adapters.base import AudioChunk, TTSInput
from adapters.piper.adapter import PiperAdapter
from adapters.piper.split import (
    DECODER_PAD_FRAMES,
    FIRST_WINDOW_FRAMES,
    MAX_WINDOW_FRAMES,
    WINDOWS,
    decoder_input,
    split_model,
)
from server.config import Settings
from tests.piper_test_voices import add_voice, joe, multi_speaker_model

HOP = 256
LONG = ("Morpheus streams speech while the text is still being read, and the listener hears "
        "the first words long before the last ones are made, without a gap between them.")


@pytest.fixture(scope="module")
def still(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("voices")
    add_voice(folder, "en_US-still-medium", still=True)
    return folder


def whole_graph_audio(text: str) -> np.ndarray:
    """Piper's own way: the whole graph, one run per sentence, no noise (int16 as we send it)."""
    from piper import PiperVoice
    from piper.config import PiperConfig, SynthesisConfig

    config = PiperConfig.from_dict(json.loads(Path(f"{joe()}.json").read_text()))
    voice = PiperVoice(session=ort.InferenceSession(str(joe())), config=config)
    still = SynthesisConfig(noise_scale=0.0, length_scale=1.0, noise_w_scale=0.0)
    out = []
    for phonemes in voice.phonemize(text):
        audio = voice.phoneme_ids_to_audio(voice.phonemes_to_ids(phonemes), still)
        out.append((np.clip(audio.reshape(-1), -1, 1) * 32767).astype(np.int16))
    return np.concatenate(out)


async def stream(adapter: PiperAdapter, text: str, ahead_ms: float = 0.0) -> list[AudioChunk]:
    req = TTSInput(text, voice="en_US-still-medium", buffer_ms=lambda: ahead_ms)
    return [c async for c in adapter.synth_stream(req)]


def test_the_decoder_input_is_found_by_structure() -> None:
    graph = onnx.load(str(joe())).graph
    latent = decoder_input(graph)
    assert latent is not None
    readers = [n.name for n in graph.node if latent in n.input]
    assert readers == ["/dec/conv_pre/Conv"]
    split = split_model(joe())
    assert split is not None and split.durations is not None
    assert split.latent == latent and split.decoder_inputs == (latent,)
    assert split.flow is not None
    # the flow reads the frames made before it (prior sample, mask), nothing of the text
    flow = onnx.load_from_string(split.flow)
    assert {i.name for i in flow.graph.input} == set(split.flow_inputs)
    assert len(split.flow_inputs) == 2 and "input" not in split.flow_inputs


def test_a_multi_speaker_decoder_takes_sid_not_the_fronts_tensors(tmp_path: Path) -> None:
    split = split_model(multi_speaker_model(tmp_path / "duo.onnx"))
    assert split is not None
    assert split.decoder_inputs[1:] == ("sid",)  # the gain is made from sid in the decoder


def test_a_graph_without_a_decoder_is_run_whole(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["output"])], "plain",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(tmp_path / "plain.onnx"))
    assert split_model(tmp_path / "plain.onnx") is None


@pytest.mark.parametrize("total", [1, 24, 44, 45, 100, 619, 2000])
def test_windows_cover_the_sentence_once_small_first_then_growing(total: int) -> None:
    ends, start, index = [], 0, 0
    while start < total:
        end = WINDOWS.next_end(start, total, index, 0.0, 0.7)
        assert start < end <= total
        ends.append(end)
        start, index = end, index + 1
    sizes = np.diff([0, *ends])
    assert ends[-1] == total
    if total > FIRST_WINDOW_FRAMES + 2 * DECODER_PAD_FRAMES:
        assert sizes[0] == FIRST_WINDOW_FRAMES
    assert all(s <= MAX_WINDOW_FRAMES + 2 * DECODER_PAD_FRAMES for s in sizes)
    assert list(sizes[:-1]) == sorted(sizes[:-1])  # growing (the last takes what is left)
    assert WINDOWS.padded(0, ends[0], total)[0] == 0 and WINDOWS.padded(ends[-2] if len(ends) > 1 else 0,
                                                        total, total)[1] == total


def test_a_listeners_lead_buys_a_larger_window_up_to_the_cap() -> None:
    assert WINDOWS.next_end(0, 600, 0, None, None) == FIRST_WINDOW_FRAMES  # first audio
    assert WINDOWS.next_end(24, 600, 1, None, None) == 72  # then doubling
    assert WINDOWS.next_end(0, 600, 0, 70.0, 0.7) == 50  # half of 70 ms at 0.7 ms a frame
    assert WINDOWS.next_end(0, 600, 0, 70.0, 0.7, spent_ms=14.0) == 30  # less the front's time
    assert WINDOWS.next_end(0, 600, 0, 5000.0, 0.7) == MAX_WINDOW_FRAMES  # never more
    assert WINDOWS.next_end(0, 270, 0, 5000.0, 0.7) == 270  # a short rest goes at once


async def test_windows_join_into_the_whole_graphs_audio(still: Path) -> None:
    adapter = PiperAdapter.from_options(Settings(piper_voices_dir=str(still)).model_dump())
    chunks = await stream(adapter, LONG)
    got = np.frombuffer(b"".join(c.pcm for c in chunks), "<i2").astype(np.int32)
    want = whole_graph_audio(LONG).astype(np.int32)
    assert len(got) == len(want)
    # The same samples but for the context cut: a peak error under 0.3% of full scale and
    # an error over 60 dB below the speech (a decoder with no context: ~25 dB)
    error = got - want
    snr_db = 10 * np.log10(np.mean(want.astype(float) ** 2) / max(np.mean(error ** 2.0), 1e-9))
    print(f"max error {np.max(np.abs(error))}, SNR {snr_db:.1f} dB")
    assert np.max(np.abs(error)) <= 100 and snr_db >= 60
    # the first window, made from a flow over its own frames and a few more, the same way
    # (a flow cut right after the decoder's context: 59 dB)
    n = len(chunks[0].pcm) // 2
    first_db = 10 * np.log10(np.mean(want[:n].astype(float) ** 2)
                             / max(np.mean(error[:n] ** 2.0), 1e-9))
    print(f"first window SNR {first_db:.1f} dB")
    assert first_db >= 70
    assert len(chunks) >= 4  # one sentence, many windows
    first = np.frombuffer(chunks[0].pcm, "<i2")
    assert len(first) == FIRST_WINDOW_FRAMES * HOP
    assert [c.is_final for c in chunks] == [False] * (len(chunks) - 1) + [True]


async def test_far_ahead_a_sentence_goes_in_the_largest_windows(still: Path) -> None:
    adapter = PiperAdapter.from_options(Settings(piper_voices_dir=str(still)).model_dump())
    await stream(adapter, "Hello.")  # the decoder's pace is known from here on
    chunks = await stream(adapter, LONG, ahead_ms=60_000)
    sizes = [len(c.pcm) // 2 // HOP for c in chunks]
    assert sizes[:-1] == [MAX_WINDOW_FRAMES] * (len(sizes) - 1)


async def test_each_window_carries_the_words_that_start_in_it(still: Path) -> None:
    adapter = PiperAdapter.from_options(Settings(piper_voices_dir=str(still)).model_dump())
    text = "First things first. " + LONG
    chunks = await stream(adapter, text)
    words = [w for c in chunks for w in c.words]
    assert [w.text for w in words] == text.split()  # every word once, in order
    assert chunks[0].words  # timings are known to be exact from the first chunk
    made_ms = 0.0
    for c in chunks:
        made_ms += c.duration_ms
        for w in c.words:
            assert w.start_ms <= made_ms + 1  # a word never rides ahead of its audio's window
    assert words[-1].end_ms <= made_ms + 1


async def test_a_cancelled_stream_stops_after_the_window_in_flight(still: Path) -> None:
    class Counting(PiperAdapter):
        runs = 0

        def _engine_run(self):  # type: ignore[no-untyped-def]
            self.runs += 1
            return super()._engine_run()

    adapter = Counting.from_options(Settings(piper_voices_dir=str(still)).model_dump())
    agen = adapter.synth_stream(TTSInput(LONG * 3, voice="en_US-still-medium",
                                         buffer_ms=lambda: 0.0))
    first = await agen.__anext__()
    assert first.pcm
    await agen.aclose()
    runs = adapter.runs
    await asyncio.sleep(0.5)
    assert adapter.runs == runs <= 3  # the front, the first window, at most one more
