"""A SNAC 24 kHz checkpoint with seeded random weights, saved in the hub layout for the loader."""

from __future__ import annotations

import json
from pathlib import Path

# hubertsiuzdak/snac_24khz config.json (the model Orpheus decodes with); 19.8 M parameters.
SNAC_24KHZ_CONFIG: dict[str, object] = {
    "sampling_rate": 24000,
    "encoder_dim": 48,
    "encoder_rates": [2, 4, 8, 8],
    "decoder_dim": 1024,
    "decoder_rates": [8, 8, 4, 2],
    "attn_window_size": None,
    "codebook_size": 4096,
    "codebook_dim": 8,
    "vq_strides": [4, 2, 1],
    "noise": True,
    "depthwise": True,
}


def write_snac_checkpoint(
    directory: Path, *, seed: int = 1234, legacy_keys: bool = True, silent_noise: bool = False
) -> Path:
    """Build SNAC from the 24 kHz config with seeded weights; write config.json +
    pytorch_model.bin into `directory` and return it.

    `legacy_keys` names weight-norm tensors `weight_g`/`weight_v`, as checkpoints saved with
    torch's old weight_norm API do; the loader must accept both namings. `silent_noise` zeroes
    the decoder's noise injection so decodes are deterministic (for continuity checks).
    """
    import torch
    from snac import SNAC

    torch.manual_seed(seed)
    model = SNAC(**SNAC_24KHZ_CONFIG)  # type: ignore[arg-type]
    state = model.state_dict()
    if silent_noise:
        # NoiseBlock.linear is bias-free; weight = g * v/|v|, so g = 0 removes the noise term.
        for key in state:
            if ".linear." in key and key.endswith("original0"):
                state[key] = torch.zeros_like(state[key])
    if legacy_keys:
        state = {_legacy_name(k): v for k, v in state.items()}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(SNAC_24KHZ_CONFIG))
    torch.save(state, directory / "pytorch_model.bin")
    return directory


def _legacy_name(key: str) -> str:
    return (key.replace("parametrizations.weight.original0", "weight_g")
               .replace("parametrizations.weight.original1", "weight_v"))


def random_frames(count: int, seed: int = 0) -> list[tuple[int, ...]]:
    """`count` valid 7-code frames, reproducible."""
    import random

    rng = random.Random(seed)
    return [tuple(rng.randrange(4096) for _ in range(7)) for _ in range(count)]


def frames_to_token_text(frames: list[tuple[int, ...]]) -> list[str]:
    """Frames -> the `<custom_token_N>` strings an Orpheus model streams for them."""
    tokens = []
    for frame in frames:
        for slot, code in enumerate(frame):
            tokens.append(f"<custom_token_{code + 10 + 4096 * slot}>")
    return tokens
