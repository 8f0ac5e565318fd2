"""Kokoro's graph cut in two, so that a sentence's audio streams window by window.

Kokoro-82M runs ALBERT, a text encoder and the duration / F0 / energy predictors over the
whole sentence, then a decoder: four AdaIN blocks at the predictor's frame rate (40 Hz, one
frame = 600 samples at 24 kHz), a harmonic source built from the F0 curve (a running phase:
a CumSum over the sentence, then `Sin`), and an iSTFTNet generator (two upsampling stages with
AdaIN resblocks) that turns both into audio. The generator is ~85% of the cost.

The cut is made where the generator starts, so that all that spans the sentence (the
predictors, the decoder blocks with their instance norms, the source's phase) is computed
once per sentence by the `front`, and only the generator runs per window:

    front:     tokens, style, speed -> features (2 per frame), source (the harmonic source
               signal before its STFT, 600 samples per frame), durations (frames per token)
    generator: features, source, style -> audio

The generator is convolutional along time except for its instance norms (see
adapters/kokoro/norms.py) and the int8 model's per-call activation quantization. Each tensor
is found by structure and the scope names every Kokoro export keeps (`/generator/`), not by
full name; a graph that does not cut gets None and is run whole, one batch per run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from adapters.windowed.graphcut import boundary

GENERATOR_SCOPE = "/generator/"
STYLE_INPUT = "style"
SPEED_INPUT = "speed"
TOKEN_INPUTS = ("tokens", "input_ids")  # older exports, newer exports


@dataclass(frozen=True)
class KokoroGraph:
    """The parts, serialized for onnxruntime, and the tensors that pass between them."""

    front: bytes
    generator: bytes
    tokens: str  # the token input's name
    features: str
    source: str
    durations: str
    norms: int  # instance norms in the generator that take calibrated statistics
    metadata: dict[str, str]  # the model's metadata_props (a newer export keeps its config)

    def parts_released(self) -> KokoroGraph:
        """The same description without the serialized parts (once sessions hold them)."""
        return replace(self, front=b"", generator=b"")


def find_durations(graph: Any) -> str | None:
    """Each token's frames: the predictor's sum over its duration bins divided by `speed`,
    rounded (`Round(Div(., speed))`) and clamped to at least one frame (`Clip`)."""
    consumers = _consumers(graph)
    found = []
    for node in graph.node:
        if node.op_type != "Div" or SPEED_INPUT not in node.input[1:]:
            continue
        for rounded in consumers.get(node.output[0], []):
            if rounded.op_type != "Round":
                continue
            clips = [c for c in consumers.get(rounded.output[0], []) if c.op_type == "Clip"]
            found.append(clips[0].output[0] if clips else rounded.output[0])
    return found[0] if len(found) == 1 else None


def find_source(graph: Any) -> str | None:
    """The harmonic source as the generator's STFT reads it: the signal input of the one STFT
    node in the generator (the per-window part re-runs only this cheap 20-point STFT)."""
    found = [n.input[0] for n in graph.node
             if n.op_type == "STFT" and GENERATOR_SCOPE in n.name]
    return found[0] if len(found) == 1 else None


def find_features(graph: Any, source: str) -> str | None:
    """What the decoder blocks hand the generator: the one tensor generator nodes read that
    is made outside the generator, is not made from weights and the style alone, is read by no
    node outside the generator (the F0 curve is: the decoder blocks read it too) and is not on
    the source's path."""
    nodes = list(graph.node)
    seeds = [n for n in nodes if GENERATOR_SCOPE in n.name]
    source_path = _upstream(graph, source)
    readers = _consumers(graph)
    seed_ids = {id(n) for n in seeds}
    cut = boundary(graph, seeds, graph.output[0].name, (STYLE_INPUT,)) - {STYLE_INPUT}
    found = [t for t in cut
             if t not in source_path
             and all(id(r) in seed_ids for r in readers.get(t, []))]
    return found[0] if len(found) == 1 else None


def cut_model(model_path: str | Path) -> KokoroGraph | None:
    """The model as front and generator (the generator's norms opened for calibrated
    statistics), or None when its graph does not cut as expected."""
    import onnx
    from onnx.utils import Extractor

    from adapters.kokoro.norms import open_norms

    model = onnx.load(str(model_path))
    graph = model.graph
    inputs = [i.name for i in graph.input]
    tokens = next((name for name in TOKEN_INPUTS if name in inputs), None)
    if tokens is None or {STYLE_INPUT, SPEED_INPUT} - set(inputs) or len(graph.output) != 1:
        return None
    durations = find_durations(graph)
    source = find_source(graph)
    features = find_features(graph, source) if source else None
    if durations is None or source is None or features is None:
        return None
    _describe(graph, (durations, source, features))
    audio = graph.output[0].name
    try:
        extractor = Extractor(model)
        front = extractor.extract_model([tokens, STYLE_INPUT, SPEED_INPUT],
                                        [features, source, durations])
        generator = extractor.extract_model([features, source, STYLE_INPUT], [audio])
    except Exception:  # onnx raises plain Exceptions for a cut it cannot make
        return None
    if not (_closed(front.graph) and _closed(generator.graph)):
        return None  # a part reads something the cut does not hand it
    norms = open_norms(generator)
    metadata = {p.key: p.value for p in model.metadata_props}
    return KokoroGraph(front.SerializeToString(), generator.SerializeToString(), tokens,
                       features, source, durations, norms, metadata)


def _consumers(graph: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in dict.fromkeys(node.input):  # a node reading a tensor twice is one reader
            out.setdefault(name, []).append(node)
    return out


def _upstream(graph: Any, tensor: str) -> set[str]:
    """Every tensor `tensor` is made from, itself included."""
    producer = {o: n for n in graph.node for o in n.output}
    seen: set[str] = set()
    todo = [tensor]
    while todo:
        t = todo.pop()
        if t in seen or not t:
            continue
        seen.add(t)
        if t in producer:
            todo.extend(producer[t].input)
    return seen


def _describe(graph: Any, tensors: Iterable[str]) -> None:
    """Give the cut tensors a value_info entry, which the extractor needs for its inputs and
    outputs (the shapes are left to onnxruntime)."""
    import onnx

    known = {v.name for v in (*graph.value_info, *graph.input, *graph.output)}
    for name in tensors:
        if name not in known:
            info = onnx.ValueInfoProto()
            info.name = name
            graph.value_info.append(info)


def _closed(graph: Any) -> bool:
    """Every node's inputs are the part's inputs, weights or made inside the part."""
    have = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    for node in graph.node:
        if any(i not in have for i in node.input):
            return False
        have.update(node.output)
    return True


__all__ = [
    "GENERATOR_SCOPE",
    "KokoroGraph",
    "cut_model",
    "find_durations",
    "find_features",
    "find_source",
]
