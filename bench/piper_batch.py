"""Piper's cut graph (adapters/piper/split.py) run on several items at once: each part's feeds
padded and masked the way the export expects, and each item's outputs cut back out.

The VITS export takes `input [batch, phonemes]` with `input_lengths [batch]`: the text front
masks what lies past an item's length (attention, convolutions, the duration predictor), so a
padded item gets the durations and latent frames it gets alone (to float rounding: measured
7.5e-6 on the joe voice). The front's `y_mask [batch, 1, frames]` marks each item's frames;
the flow multiplies by it at every layer, so zero frames past an item's end change nothing.
The decoder takes no mask: an item shorter than the batch's longest is padded with zero
latent frames (what the whole graph itself hands a shorter item of a batch), which leaves
its last frames' context different from one run alone; `decoder_batch` therefore pads only
what is asked, and the measurement batches windows of one length (the first windows of
sentences are all 32 frames; steady windows all 272).

Used by the `batching` bench part to measure what batching saves; the server runs Piper one
item at a time because it does not pay on the CPU it was measured on (bench/parts/batching.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adapters.piper.split import SplitModel, split_model


@dataclass(frozen=True)
class CutVoice:
    """A voice's three parts as onnxruntime sessions with one thread setting, the way the
    adapter opens them (intra-op threads, one inter-op thread, no spinning)."""

    model: SplitModel
    front: Any
    flow: Any
    decoder: Any
    threads: int  # intra-op threads of every session
    z_name: str  # the flow's latent input [batch, channels, frames]
    mask_name: str  # the flow's frame mask [batch, 1, frames]

    @classmethod
    def open(cls, path: Path, threads: int) -> CutVoice:
        import onnxruntime as ort

        model = split_model(path)
        if model is None or model.flow is None:
            raise ValueError(f"{path}: not a Piper graph cut in three")

        def session(part: bytes) -> Any:
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            return ort.InferenceSession(part, sess_options=so, providers=["CPUExecutionProvider"])

        flow = session(model.flow)
        shapes = {i.name: i.shape for i in flow.get_inputs()}
        masks = [n for n, s in shapes.items() if len(s) == 3 and s[1] == 1]
        if len(masks) != 1 or len(shapes) != 2:
            raise ValueError(f"{path}: the flow's inputs are not (latent, mask): {shapes}")
        if len(model.decoder_inputs) != 1:  # a multi-speaker voice also hands the decoder
            raise ValueError(f"{path}: measured on single-speaker voices only")  # its speaker
        mask = masks[0]
        z = next(n for n in shapes if n != mask)
        return cls(model, session(model.front), flow, session(model.decoder), threads, z, mask)


@dataclass
class FrontOut:
    """One item's text front outputs, cut to its own length."""

    z: np.ndarray  # [1, channels, frames]
    mask: np.ndarray  # [1, 1, frames]
    durations: np.ndarray  # [1, 1, phoneme ids]: frames per id

    @property
    def frames(self) -> int:
        return self.z.shape[-1]


def front_feeds(ids: list[list[int]], scales: np.ndarray) -> dict[str, np.ndarray]:
    """The front's feeds for several phoneme id sequences: padded with id 0 to the longest,
    each item's true length in `input_lengths`."""
    longest = max(len(i) for i in ids)
    x = np.zeros((len(ids), longest), dtype=np.int64)
    for k, item in enumerate(ids):
        x[k, :len(item)] = item
    return {"input": x, "input_lengths": np.array([len(i) for i in ids], dtype=np.int64),
            "scales": scales}


def run_front(voice: CutVoice, ids: list[list[int]], scales: np.ndarray) -> list[FrontOut]:
    """The front over several items in one run, each item's outputs cut back out."""
    m = voice.model
    outputs = dict(zip([o.name for o in voice.front.get_outputs()],
                       voice.front.run(None, front_feeds(ids, scales)), strict=True))
    z, mask = outputs[voice.z_name], outputs[voice.mask_name]
    durations = outputs[m.durations] if m.durations else np.zeros((len(ids), 1, 0), np.float32)
    out = []
    for k, item in enumerate(ids):
        frames = int(round(float(mask[k].sum())))
        out.append(FrontOut(z[k:k + 1, :, :frames], mask[k:k + 1, :, :frames],
                            durations[k:k + 1, :, :len(item)]))
    return out


def run_flow(voice: CutVoice, items: list[FrontOut], frames: int) -> list[np.ndarray]:
    """The flow over each item's first `frames` latent frames (all, if it has fewer), in one
    run: zero frames past an item's end are masked out; each item's latent cut back."""
    lengths = [min(frames, it.frames) for it in items]
    longest = max(lengths)
    channels = items[0].z.shape[1]
    z = np.zeros((len(items), channels, longest), dtype=np.float32)
    mask = np.zeros((len(items), 1, longest), dtype=np.float32)
    for k, (it, n) in enumerate(zip(items, lengths, strict=True)):
        z[k, :, :n] = it.z[0, :, :n]
        mask[k, :, :n] = it.mask[0, :, :n]
    latent = voice.flow.run([voice.model.latent], {voice.z_name: z, voice.mask_name: mask})[0]
    return [latent[k:k + 1, :, :n] for k, n in enumerate(lengths)]


def run_decoder(voice: CutVoice, windows: list[np.ndarray], hop: int) -> list[np.ndarray]:
    """The decoder over several latent windows ([1, channels, frames] each) in one run, each
    item's audio (frames x hop samples) cut back. Windows of unequal length are zero-padded to
    the longest (their last frames then differ from a run alone; see the module's doc)."""
    lengths = [w.shape[-1] for w in windows]
    longest = max(lengths)
    batch = np.zeros((len(windows), windows[0].shape[1], longest), dtype=np.float32)
    for k, w in enumerate(windows):
        batch[k, :, :w.shape[-1]] = w[0]
    audio = voice.decoder.run(None, {voice.model.latent: batch})[0].reshape(len(windows), -1)
    return [audio[k, :n * hop] for k, n in enumerate(lengths)]


__all__ = ["CutVoice", "FrontOut", "front_feeds", "run_decoder", "run_flow", "run_front"]
