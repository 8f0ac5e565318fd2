"""SNAC decoders: frames [B, T, 7] in, float audio [B, T*2048] out, on torch or ONNX Runtime.

`TorchSnac` runs the network loaded by `load_snac` (torch, CUDA when present). `export_onnx`
writes that network's decoder as an ONNX graph with dynamic batch and length (needs torch, once);
`OnnxSnac` runs such a file on onnxruntime (CUDA through onnxruntime-gpu where installed) and
never imports torch, so a deployment with the file needs neither torch nor snac.

SNAC's decoder adds noise at inference (`NoiseBlock`: fresh `randn` on every call, scaled by a
learned projection). The export keeps it (`RandomNormalLike` in the graph), so both decoders
sound alike; two decodes of the same frames differ by that noise unless its weights are zero.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from adapters.orpheus.tokens import TOKENS_PER_FRAME

log = logging.getLogger("morpheus.snac")

ONNX_INPUT = "frames"
ONNX_OUTPUT = "audio"


class SnacRunner(Protocol):
    """One batched decode: `frames` int64 [B, T, 7] -> float32 [B, T * 2048] in [-1, 1].

    Blocking (run it in a worker thread); not required to be thread-safe."""

    device: str  # "cpu", "cuda", "cuda:1", ...
    kind: str  # "torch" or "onnx"

    def decode(self, frames: np.ndarray) -> np.ndarray: ...


def _codebooks(frames: Any) -> list[Any]:
    """[B, T, 7] -> SNAC's three codebooks [B, T], [B, 2T], [B, 4T] (Orpheus' layout:
    [c0], [c1, c4], [c2, c3, c5, c6] per frame). Works on torch tensors, inside the export too."""
    b, t = frames.shape[0], frames.shape[1]
    return [frames[:, :, 0],
            frames[:, :, [1, 4]].reshape(b, 2 * t),
            frames[:, :, [2, 3, 5, 6]].reshape(b, 4 * t)]


def decode_module(model: Any) -> Any:
    """The decoder half of a loaded SNAC as one torch module: frames [B, T, 7] -> [B, T*2048]."""
    import torch

    class FramesDecoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.quantizer = model.quantizer
            self.decoder = model.decoder

        def forward(self, frames: torch.Tensor) -> torch.Tensor:
            z = self.quantizer.from_codes(_codebooks(frames))
            return self.decoder(z)[:, 0, :]

    return FramesDecoder().eval()


class TorchSnac:
    """The torch network (from `load_snac`) behind the `SnacRunner` interface."""

    kind = "torch"

    def __init__(self, model: Any, *, threads: int | None = None) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)  # process-wide: SNAC is torch's only user here
        self.model = model
        self._module = decode_module(model)
        self.device = str(next(model.parameters()).device)

    def decode(self, frames: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.int64)).to(self.device)
            audio = self._module(x)
            return audio.float().cpu().numpy()


def export_onnx(model: Any, out: str | Path, *, opset: int | None = None) -> Path:
    """Write `model`'s decoder (frames -> audio) as ONNX with dynamic batch and length.

    Uses the dynamo exporter (`torch.onnx.export(..., dynamo=True)`, which needs onnxscript).
    The decoder's noise injection is kept. Returns the path written (weights inside the file).
    """
    import torch

    module = decode_module(model).to("cpu")
    example = torch.zeros((2, 5, TOKENS_PER_FRAME), dtype=torch.long)
    batch = torch.export.Dim("batch", min=1, max=1024)
    length = torch.export.Dim("frames", min=1, max=4096)
    kwargs: dict[str, Any] = {"opset_version": opset} if opset else {}
    program = torch.onnx.export(
        module, (example,), dynamo=True, input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
        dynamic_shapes={"frames": {0: batch, 1: length}}, verbose=False, **kwargs)
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(out), external_data=False)
    return out


def onnx_providers(device: str | None) -> list[str]:
    """CUDA first when onnxruntime has it and the device is not forced to CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device != "cpu" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device and device.startswith("cuda"):
        log.warning("SNAC_DEVICE=%s but onnxruntime has no CUDA provider (install "
                    "onnxruntime-gpu); decoding on CPU", device)
    return ["CPUExecutionProvider"]


class OnnxSnac:
    """An exported SNAC decoder on onnxruntime; imports neither torch nor snac."""

    kind = "onnx"

    def __init__(self, path: str | Path, *, device: str | None = None,
                 threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"SNAC_ONNX {path} does not exist")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        # Decodes come in bursts between which the event loop needs the cores: threads that
        # spin-wait for the next run take them away (measured: 2 spinning threads decoded at
        # half the speed of non-spinning ones on a busy 2-core machine).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = onnx_providers(device)
        self._session = ort.InferenceSession(str(path), options, providers=providers)
        names = [i.name for i in self._session.get_inputs()]
        if names != [ONNX_INPUT]:
            raise ValueError(f"{path} is not a SNAC decoder export (inputs {names}); make one "
                             "with `morpheus snac export`")
        self.device = "cuda" if self._session.get_providers()[0].startswith("CUDA") else "cpu"
        self.path = path

    def decode(self, frames: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(frames, dtype=np.int64)
        (audio,) = self._session.run([ONNX_OUTPUT], {ONNX_INPUT: x})
        return np.asarray(audio, dtype=np.float32)


__all__ = [
    "ONNX_INPUT",
    "ONNX_OUTPUT",
    "OnnxSnac",
    "SnacRunner",
    "TorchSnac",
    "decode_module",
    "export_onnx",
    "onnx_providers",
]
