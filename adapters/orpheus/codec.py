"""SNAC 24 kHz codec for Orpheus: token text -> codes -> frames -> PCM, streamed without loss."""

from __future__ import annotations

import inspect
import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("morpheus.snac")

SNAC_RATE_HZ = 24_000
CODEBOOK_SIZE = 4096
TOKENS_PER_FRAME = 7
SAMPLES_PER_FRAME = 2048  # 4 latent steps x hop 512: 85.33 ms at 24 kHz
CUSTOM_TOKEN_OFFSET = 10  # <custom_token_0..9> are control tokens (start/end of speech, ...)
MAX_CUSTOM_TOKEN = CUSTOM_TOKEN_OFFSET + TOKENS_PER_FRAME * CODEBOOK_SIZE - 1

Frame = tuple[int, int, int, int, int, int, int]

_TOKEN_RE = re.compile(r"<custom_token_(\d+)>")
_PARTIAL_RE = re.compile(r"<custom_token_\d{0,8}")
_TOKEN_PREFIX = "<custom_token_"


# ---------------------------------------------------------------------------- tokens -> codes


@dataclass
class ParserStats:
    """What a TokenParser saw; bad frames are counted here and logged, never silently lost."""

    audio_tokens: int = 0
    control_tokens: int = 0
    frames: int = 0
    bad_tokens: int = 0
    bad_frames: int = 0
    tail_tokens_dropped: int = 0  # an incomplete last frame at the end of the stream


class TokenParser:
    """Incremental `<custom_token_N>` text -> SNAC codes, robust to how the text is split.

    `feed()` accepts any piece of streamed text: several tokens, part of a token (the rest
    arrives in the next piece), or non-audio text (ignored). It returns the codes of the frames
    completed by this piece, always whole 7-code frames. Code = N - 10 - 4096 * (i mod 7), where
    i counts audio tokens. Code 0 is valid. A token out of range for its position spoils its
    frame: the frame is dropped and counted, but i still advances, so the next frame keeps its
    alignment. Tokens N < 10 are control tokens (start/end of speech) and do not advance i.
    """

    def __init__(self) -> None:
        self._carry = ""
        self._position = 0
        self._frame: list[int] = []
        self._frame_bad = False
        self.stats = ParserStats()

    def feed(self, text: str) -> list[int]:
        buf = self._carry + text
        out: list[int] = []
        end = 0
        for match in _TOKEN_RE.finditer(buf):
            self._accept(int(match.group(1)), out)
            end = match.end()
        self._carry = _partial_token_tail(buf[end:])
        return out

    def finish(self) -> int:
        """End of stream: drop (and count) an incomplete last frame; return its token count."""
        dropped = len(self._frame)
        if dropped:
            log.warning("dropping %d tokens of an incomplete last SNAC frame", dropped)
        self.stats.tail_tokens_dropped += dropped
        self._frame = []
        self._frame_bad = False
        self._carry = ""
        return dropped

    def _accept(self, n: int, out: list[int]) -> None:
        if n < CUSTOM_TOKEN_OFFSET:
            self.stats.control_tokens += 1
            return
        slot = self._position % TOKENS_PER_FRAME
        code = n - CUSTOM_TOKEN_OFFSET - CODEBOOK_SIZE * slot
        self._position += 1
        self.stats.audio_tokens += 1
        if not 0 <= code < CODEBOOK_SIZE:
            self.stats.bad_tokens += 1
            self._frame_bad = True
        self._frame.append(code)
        if slot < TOKENS_PER_FRAME - 1:
            return
        if self._frame_bad:
            self.stats.bad_frames += 1
            log.warning("skipping SNAC frame %d: token out of range for its position",
                        self._position // TOKENS_PER_FRAME - 1)
        else:
            out.extend(self._frame)
            self.stats.frames += 1
        self._frame = []
        self._frame_bad = False


def _partial_token_tail(tail: str) -> str:
    """The part of `tail` that may be the start of a token cut at a piece boundary."""
    cut = tail.rfind("<")
    if cut < 0:
        return ""
    candidate = tail[cut:]
    if _TOKEN_PREFIX.startswith(candidate) or _PARTIAL_RE.fullmatch(candidate):
        return candidate
    return ""


def split_frames(codes: Sequence[int]) -> list[Frame]:
    """Flat codes (a multiple of 7) -> 7-code frames."""
    if len(codes) % TOKENS_PER_FRAME:
        raise ValueError(f"{len(codes)} codes is not a whole number of frames")
    return [tuple(codes[i : i + TOKENS_PER_FRAME])  # type: ignore[misc]
            for i in range(0, len(codes), TOKENS_PER_FRAME)]


def frames_to_codebooks(
    frames: Sequence[Sequence[int]],
) -> tuple[list[int], list[int], list[int]]:
    """Frames [c0..c6] -> SNAC's three codebooks: [c0], [c1, c4], [c2, c3, c5, c6] per frame."""
    coarse: list[int] = []
    middle: list[int] = []
    fine: list[int] = []
    for f in frames:
        if len(f) != TOKENS_PER_FRAME:
            raise ValueError(f"a frame has {TOKENS_PER_FRAME} codes, got {len(f)}")
        coarse.append(f[0])
        middle.extend((f[1], f[4]))
        fine.extend((f[2], f[3], f[5], f[6]))
    return coarse, middle, fine


# ---------------------------------------------------------------------------- model loading


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


# ---------------------------------------------------------------------------- streaming decode


@dataclass(frozen=True)
class Window:
    """One decode a stream needs: `frames` [T, 7] (int64) starting at stream frame `first`;
    of the T * 2048 samples they decode to, stream samples [emit_from, emit_to) are new audio,
    the rest is context (left of emit_from, right of emit_to)."""

    frames: np.ndarray
    first: int
    emit_from: int
    emit_to: int

    @property
    def length(self) -> int:
        """Frames decoded."""
        return int(self.frames.shape[0])

    @property
    def new_samples(self) -> int:
        return self.emit_to - self.emit_from


class StreamingSnacDecoder:
    """Frames in, s16le 24 kHz PCM out: F frames always give exactly F * 2048 samples.

    Each decode runs SNAC over a window of frames and keeps only the samples that had enough
    context on both sides: `kept_slice=(start, end)` (in samples of a `window_frames` window)
    means `start` samples of left context and `window_frames*2048 - end` of right context.
    The default (2048, 4096) of a 4-frame window is Orpheus' own scheme: one new frame per
    4-frame window. Asking for more new frames per decode (`plan(max_frames=n)` once `n`
    frames are ready) keeps the same left context and lookahead around a wider window: 3 new
    frames decode a 6-frame window, half the frames decoded per new frame. Where the stream
    itself begins or ends there is no missing context, so the first frame is emitted as soon
    as its right context exists and `flush()` emits the tail. When frames pile up (the token
    source runs ahead of decoding) one window covers them all, up to `max_window_frames`.
    `start_lookahead_frames` lets the first decode wait for fewer frames of right context.

    Two ways to run it: `decode_ready()`/`flush()` decode in place with `model` (a torch SNAC
    or any `SnacRunner`; blocking); or `plan()`/`plan_flush()` hand out the next `Window`, to
    be decoded elsewhere (a shared worker, batched with other streams) and given back to
    `complete()`, one window at a time. Not thread-safe.
    """

    def __init__(
        self,
        model: Any = None,
        *,
        window_frames: int = 4,
        kept_slice: tuple[int, int] = (SAMPLES_PER_FRAME, 2 * SAMPLES_PER_FRAME),
        max_window_frames: int = 16,
        start_lookahead_frames: int | None = None,
    ) -> None:
        start, end = kept_slice
        if window_frames < 1 or not 0 <= start < end <= window_frames * SAMPLES_PER_FRAME:
            raise ValueError(f"kept_slice {kept_slice} does not fit a {window_frames}-frame window")
        self._runner = as_runner(model) if model is not None else None
        self._left_samples = start
        self._right_samples = window_frames * SAMPLES_PER_FRAME - end
        # One frame more than the base window guarantees progress at any sample alignment.
        self._max_window = max(max_window_frames, window_frames + 1)
        self._start_lookahead = (self._right_samples if start_lookahead_frames is None
                                 else min(self._right_samples,
                                          max(0, start_lookahead_frames) * SAMPLES_PER_FRAME))
        self._frames: list[Sequence[int]] = []  # frames from index self._base on
        self._base = 0
        self._received = 0
        self._emitted_samples = 0
        self.decode_calls = 0

    @property
    def frames_received(self) -> int:
        return self._received

    @property
    def samples_emitted(self) -> int:
        return self._emitted_samples

    @property
    def ready_samples(self) -> int:
        """Samples the next `plan()` can emit now (they have their full right context)."""
        return max(0, self._received * SAMPLES_PER_FRAME - self._lookahead()
                   - self._emitted_samples)

    @property
    def pending_samples(self) -> int:
        """Samples received but not emitted yet (what `flush()` would still emit)."""
        return self._received * SAMPLES_PER_FRAME - self._emitted_samples

    def _lookahead(self) -> int:
        # The first decode may look ahead less than the rest (low latency): a little less
        # exact audio near the end of the first frame(s) for audio sooner.
        return self._start_lookahead if self._emitted_samples == 0 else self._right_samples

    def push(self, frame: Sequence[int]) -> None:
        if len(frame) != TOKENS_PER_FRAME or not all(0 <= c < CODEBOOK_SIZE for c in frame):
            raise ValueError(f"not a SNAC frame: {frame!r}")
        self._frames.append(frame)
        self._received += 1

    def plan(self, max_frames: int | None = None) -> Window | None:
        """The window that emits what has full context now (at most `max_frames` frames'
        worth of new samples); None when nothing is ready."""
        lookahead = self._lookahead()
        target = self._received * SAMPLES_PER_FRAME - lookahead
        if max_frames is not None:
            target = min(target, self._emitted_samples + max_frames * SAMPLES_PER_FRAME)
        return self._window(target, lookahead)

    def plan_flush(self) -> Window | None:
        """End of stream: the next window of the tail (no lookahead left to wait for)."""
        return self._window(self._received * SAMPLES_PER_FRAME, 0)

    def complete(self, window: Window, audio: np.ndarray) -> bytes:
        """`audio` is `window.frames` decoded (float, window.length * 2048 samples): emit the
        window's new samples as s16le PCM."""
        if window.emit_from != self._emitted_samples:
            raise ValueError("windows must be completed one at a time, in the order planned")
        if audio.shape[-1] != window.length * SAMPLES_PER_FRAME:
            raise RuntimeError(f"SNAC returned {audio.shape[-1]} samples for "
                               f"{window.length} frames")
        offset = window.first * SAMPLES_PER_FRAME
        pcm = float_to_s16le(audio[window.emit_from - offset : window.emit_to - offset])
        self._emitted_samples = window.emit_to
        self.decode_calls += 1
        self._trim()
        return pcm

    def decode_ready(self, max_frames: int | None = None) -> bytes:
        """Decode in place (one model call) what has full context; at most `max_frames` frames."""
        window = self.plan(max_frames)
        return b"" if window is None else self._decode_now(window)

    def flush(self) -> bytes:
        """End of stream, in place: emit every remaining sample (several calls if many remain)."""
        out = bytearray()
        while (window := self.plan_flush()) is not None:
            out += self._decode_now(window)
        return bytes(out)

    def _decode_now(self, window: Window) -> bytes:
        if self._runner is None:
            raise RuntimeError("this decoder has no model: decode its windows elsewhere")
        return self.complete(window, self._runner.decode(window.frames[None])[0])

    def _window(self, target: int, lookahead: int) -> Window | None:
        """The window that emits samples up to `target`, `lookahead` samples past it decoded."""
        emitted = self._emitted_samples
        if target <= emitted:
            return None
        first = max(0, (emitted - self._left_samples) // SAMPLES_PER_FRAME)
        last = min(self._received, math.ceil((target + lookahead) / SAMPLES_PER_FRAME))
        if last - first > self._max_window:
            last = first + self._max_window
            target = min(target, last * SAMPLES_PER_FRAME - self._right_samples)
        frames = np.asarray(self._frames[first - self._base : last - self._base], dtype=np.int64)
        return Window(frames, first, emitted, target)

    def _trim(self) -> None:
        keep_from = max(0, (self._emitted_samples - self._left_samples) // SAMPLES_PER_FRAME)
        if keep_from > self._base:
            del self._frames[: keep_from - self._base]
            self._base = keep_from


def as_runner(model: Any) -> Any:
    """A `SnacRunner` (adapters.orpheus.runtime) as given, or a torch SNAC wrapped in one."""
    if getattr(model, "kind", None) in ("torch", "onnx"):
        return model
    from adapters.orpheus.runtime import TorchSnac

    return TorchSnac(model)


def float_to_s16le(audio: Any) -> bytes:
    """float [-1, 1] samples (numpy, or a CPU tensor) -> clipped, rounded little-endian int16."""
    x = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * np.float32(32767.0)
    return np.rint(x).astype("<i2").tobytes()


__all__ = [
    "CODEBOOK_SIZE",
    "SAMPLES_PER_FRAME",
    "SNAC_RATE_HZ",
    "TOKENS_PER_FRAME",
    "Frame",
    "ParserStats",
    "StreamingSnacDecoder",
    "TokenParser",
    "Window",
    "as_runner",
    "float_to_s16le",
    "fold_weight_norm",
    "frames_to_codebooks",
    "load_snac",
    "resolve_device",
    "split_frames",
]
