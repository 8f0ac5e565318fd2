"""Loading the SNAC network (torch, snac) from a local hub-layout folder."""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("morpheus.snac")


def resolve_device(device: str | None) -> str:
    """The torch device to run SNAC on: as asked, else CUDA when available, else CPU."""
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_snac(model_dir: str | Path, device: str | None = None) -> Any:
    """Load SNAC from a local hub-layout directory (config.json + model.safetensors or
    pytorch_model.bin), fold weight norm, move it to `device`, put it in eval mode.

    Raises ImportError when torch/snac are missing, FileNotFoundError when the directory is
    incomplete, ValueError when the weights do not fit the config.
    """
    from snac import SNAC

    root = Path(model_dir)
    config_path = root / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found (SNAC_MODEL must be a local directory)")
    config = json.loads(config_path.read_text())
    accepted = set(inspect.signature(SNAC.__init__).parameters) - {"self"}
    unknown = sorted(set(config) - accepted)
    if unknown:
        log.warning("ignoring unknown SNAC config keys: %s", ", ".join(unknown))
    model = SNAC(**{k: v for k, v in config.items() if k in accepted})
    try:
        model.load_state_dict(_read_state_dict(root))
    except RuntimeError as e:
        raise ValueError(f"SNAC weights in {root} do not match its config.json: {e}") from e
    folded = fold_weight_norm(model)
    model = model.to(resolve_device(device)).eval()
    model.requires_grad_(False)
    log.info("SNAC loaded from %s on %s (%d weight-norm layers folded)",
             root, next(model.parameters()).device, folded)
    return model


def _read_state_dict(root: Path) -> dict[str, Any]:
    import torch

    safetensors_path = root / "model.safetensors"
    bin_path = root / "pytorch_model.bin"
    if safetensors_path.is_file():
        from safetensors.torch import load_file

        return dict(load_file(str(safetensors_path), device="cpu"))
    if bin_path.is_file():
        return dict(torch.load(bin_path, map_location="cpu", weights_only=True))
    raise FileNotFoundError(f"no model.safetensors or pytorch_model.bin in {root}")


def fold_weight_norm(model: Any) -> int:
    """Bake weight norm into plain weights (same math, no per-call reparametrization)."""
    import torch
    from torch.nn.utils import parametrize

    folded = 0
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
            folded += 1
        elif hasattr(module, "weight_g") and hasattr(module, "weight_v"):
            torch.nn.utils.remove_weight_norm(module)  # checkpoints built with the old API
            folded += 1
    return folded


__all__ = ["fold_weight_norm", "load_snac", "resolve_device"]
