"""A Piper voice cut in three, so that a sentence's audio streams window by window.

A Piper VITS graph runs a text front (encoder, duration predictor: ~25% of the cost, in
proportion to the text), a flow over the latent frames (~20%) and a HiFi-GAN decoder (~55%)
that turns latent frames (256 samples each) into audio. Flow and decoder are convolutional
along the frames: a window decoded with `DECODER_PAD_FRAMES` of context each side gives the
samples the whole sentence gives (measured on the joe voice: 8 frames of context leave the
error 66 dB below the speech, 12 leave none), and a flow run over only a small first window's
frames needs `FLOW_PAD_FRAMES` more after them (8: 76 dB; none: 59 dB). So a sentence's first
audio costs the text front and the flow and decoder over ~40 frames (~45 ms for a clause on
one core, where the whole graph took ~110); the flow over the whole sentence and one decoder
run per window follow, and a newcomer waits for at most one window, not one sentence, before
a core is free for it. (A flow run per window instead needs 12 frames of context each side
of every window: ~4% less throughput under load, measured.)

`split_model` finds the cuts by structure (the decoder's input, and what the `flow` scope
reads from before it) and extracts each part with onnx's extractor; a graph it cannot cut gets
None and is run whole, a sentence per run; one without a `flow` scope is cut in two.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from adapters.piper.timing import find_durations_tensor
from adapters.windowed.graphcut import boundary
from adapters.windowed.schedule import Windows

DECODER_PAD_FRAMES = 8  # decoder context each side of a window (see above)
FLOW_PAD_FRAMES = 8  # flow context after a first window's frames
FIRST_WINDOW_FRAMES = 24  # ~280 ms at 22050 Hz: the first audio of a sentence
MAX_WINDOW_FRAMES = 256  # ~3 s: how long a window holds a core (~180 ms) before others go
LEAD_SHARE = 0.5  # a window may take this share of the listener's lead to make
WINDOWS = Windows(FIRST_WINDOW_FRAMES, MAX_WINDOW_FRAMES, DECODER_PAD_FRAMES, LEAD_SHARE)


@dataclass(frozen=True)
class SplitModel:
    """The parts, serialized for onnxruntime, and the tensors that pass between them."""

    front: bytes  # the voice's inputs -> `flow_inputs` (or `latent`), `durations`
    flow: bytes | None  # `flow_inputs` -> `latent`; None: the front makes the latent itself
    decoder: bytes  # `decoder_inputs` (the latent first) -> audio
    latent: str
    flow_inputs: tuple[str, ...]
    decoder_inputs: tuple[str, ...]
    durations: str | None  # each phoneme id's frames, an output of the front (word timings)

    def without_parts(self) -> SplitModel:
        """The tensor names only: the parts' bytes (the whole model's size) are dropped once
        their sessions exist."""
        return replace(self, front=b"", flow=None if self.flow is None else b"", decoder=b"")


def decoder_input(graph: object) -> str | None:
    """The latent frames the decoder reads: the one input of the `dec` scope's convolutions
    made outside that scope and not a weight or a graph input (the speaker embedding of a
    multi-speaker voice reaches the decoder through `dec/cond`, which is a weight path)."""
    nodes = list(graph.node)  # type: ignore[attr-defined]
    weights = {init.name for init in graph.initializer}  # type: ignore[attr-defined]
    inputs = {i.name for i in graph.input}  # type: ignore[attr-defined]
    made_in_dec = {o for n in nodes if n.name.startswith("/dec/") for o in n.output}
    found = [n.input[0] for n in nodes
             if n.name.startswith("/dec/") and n.op_type == "Conv" and "/cond" not in n.name
             and n.input[0] not in made_in_dec and n.input[0] not in weights | inputs]
    return found[0] if len(set(found)) == 1 else None


def split_model(model_path: str | Path) -> SplitModel | None:
    """The voice's graph as front, flow and decoder, or None when it cannot be cut."""
    import onnx
    from onnx.utils import Extractor

    model = onnx.load(str(model_path))
    graph = model.graph
    latent = decoder_input(graph)
    if latent is None or len(graph.output) != 1:
        return None
    output = graph.output[0].name
    durations = find_durations_tensor(graph)
    inputs = [i.name for i in graph.input]
    readers = [n for n in graph.node if latent in n.input]
    decoder_inputs = (latent, *sorted(boundary(graph, readers, output, ("sid",)) - {latent}))
    flow_nodes = [n for n in graph.node if n.name.startswith("/flow/")]
    flow_inputs = tuple(sorted(boundary(graph, flow_nodes, latent, ("sid",)))) if flow_nodes else ()
    handed = {*flow_inputs, *decoder_inputs[1:]} if flow_inputs else {*decoder_inputs}
    front_outputs = sorted(handed - set(inputs)) + ([durations] if durations else [])
    try:
        extractor = Extractor(model)
        front = extractor.extract_model(inputs, front_outputs)
        flow = extractor.extract_model(list(flow_inputs), [latent]) if flow_inputs else None
        decoder = extractor.extract_model(list(decoder_inputs), [output])
    except Exception:  # onnx raises plain Exceptions for a cut it cannot make
        return None
    return SplitModel(front.SerializeToString(), flow.SerializeToString() if flow else None,
                      decoder.SerializeToString(), latent, flow_inputs, decoder_inputs,
                      durations)


# ------------------------------------------------------------------------------- windows


def flow_frames(end: int, total: int) -> int:
    """How many of the sentence's first frames the flow runs over for a first window ending
    at `end`: a small first window's frames, the decoder's context after it and the flow's
    own; all of them for a larger one (the rest of the flow would repeat too much of it)."""
    if end > 2 * FIRST_WINDOW_FRAMES:
        return total
    return min(total, end + DECODER_PAD_FRAMES + FLOW_PAD_FRAMES)


__all__ = [
    "DECODER_PAD_FRAMES",
    "FIRST_WINDOW_FRAMES",
    "FLOW_PAD_FRAMES",
    "MAX_WINDOW_FRAMES",
    "LEAD_SHARE",
    "SplitModel",
    "decoder_input",
    "flow_frames",
    "WINDOWS",
    "split_model",
]
