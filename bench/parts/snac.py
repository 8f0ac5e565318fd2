"""SNAC decoding: cost per new frame by window scheme, decoder (torch, ONNX) and batch size;
the quality each scheme costs; the adapter streaming at 100 tokens/s.

A window scheme is "n new frames per window": 1 frame of left context + n new + 2 frames of
lookahead, so n = 1 is Orpheus' own 4-frame window and n = 3 a 6-frame window. Cost is
reported per NEW frame (context included), as wall ms and as CPU ms: on a machine shared with
other jobs the wall time swings, the CPU time much less. Quality is measured with SNAC's noise
disabled, against one decode of the whole utterance: the largest error (% of peak), the error
level around window seams (dB below the signal) and the log-spectral distance (dB).

Part `snac` (`python scripts/bench.py --parts snac`); knobs: `--set snac.threads=N` (decoder
threads), `--set snac.onnx=FILE` (an export made by `morpheus snac export`; else exported for
the run). `--quick`: fewer schemes and batch sizes.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from adapters.orpheus.tokens import SAMPLES_PER_FRAME, SNAC_RATE_HZ
from adapters.orpheus.windows import StreamingSnacDecoder
from bench.suite import PartContext, run_async

SCHEMES = (1, 2, 3, 6, 13)  # new frames per window: windows of 4, 5, 6, 9 and 16 frames
BATCHES = (1, 2, 4, 8)
RUNS = 5
QUALITY_FRAMES = 40
STREAM_FRAMES = 36  # about 3 s of speech
TOKENS_PER_S = 100.0
FRAME_MS = 1000.0 * SAMPLES_PER_FRAME / SNAC_RATE_HZ
CONTEXT_FRAMES = 3  # 1 left + 2 lookahead


def cost_per_new_frame(runner: Any, new: int, batch: int, runs: int = RUNS) -> dict[str, float]:
    """Median wall and CPU ms of one batched decode of `batch` windows of `new + 3` frames,
    divided by the `new * batch` frames of new audio it yields."""
    from tests.snac_fixture import random_frames

    length = new + CONTEXT_FRAMES
    frames = np.stack([np.asarray(random_frames(length, seed=b), dtype=np.int64)
                       for b in range(batch)])
    walls, cpus = [], []
    for i in range(runs + 2):  # two warm-up runs
        _sync(runner)
        w0, c0 = time.perf_counter(), time.process_time()
        runner.decode(frames)
        _sync(runner)
        if i >= 2:
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
    per = new * batch
    return {"wall_ms": round(1000 * statistics.median(walls) / per, 2),
            "cpu_ms": round(1000 * statistics.median(cpus) / per, 2)}


def _sync(runner: Any) -> None:
    if runner.kind == "torch" and runner.device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def quality(runner: Any, new: int, frames: int = QUALITY_FRAMES) -> dict[str, float]:
    """The scheme's audio against one whole-utterance decode (noise must be off)."""
    from tests.snac_fixture import random_frames

    codes = random_frames(frames, seed=77)
    reference = runner.decode(np.asarray(codes, dtype=np.int64)[None])[0]
    decoder = StreamingSnacDecoder(runner)
    pcm = bytearray()
    seams: list[int] = []
    for frame in codes:
        decoder.push(frame)
        while decoder.ready_samples >= new * SAMPLES_PER_FRAME:
            pcm += decoder.decode_ready(max_frames=new)
            seams.append(decoder.samples_emitted)
    pcm += decoder.flush()
    streamed = np.frombuffer(bytes(pcm), "<i2").astype(np.float32) / 32767.0
    ref = np.clip(reference, -1.0, 1.0)
    err = streamed - ref
    around = np.concatenate([err[max(0, s - 256): s + 256] for s in seams[:-1]] or [err[:0]])
    signal_rms = float(np.sqrt(np.mean(ref**2)))
    seam_rms = float(np.sqrt(np.mean(around**2))) if around.size else 0.0
    return {
        "max_error_pct_of_peak": round(100 * float(np.abs(err).max()) / float(np.abs(ref).max()), 2),
        "seam_error_db": round(20 * np.log10(max(seam_rms, 1e-9) / signal_rms), 1),
        "log_spectral_distance_db": round(_lsd(streamed, ref), 2),
    }


def _lsd(x: np.ndarray, y: np.ndarray, n: int = 1024, hop: int = 256) -> float:
    """Log-spectral distance (dB RMS over frequency, mean over frames)."""
    window = np.hanning(n).astype(np.float32)
    frames = range(0, min(len(x), len(y)) - n, hop)
    sx = np.abs(np.fft.rfft(np.stack([x[i:i + n] * window for i in frames]), axis=1))
    sy = np.abs(np.fft.rfft(np.stack([y[i:i + n] * window for i in frames]), axis=1))
    d = 20 * np.log10((sx + 1e-6) / (sy + 1e-6))
    return float(np.mean(np.sqrt(np.mean(d**2, axis=1))))


async def stream_through_adapter(model_dir: Path, device: str,
                                 onnx_path: Path | None) -> dict[str, float]:
    """The adapter against the llama.cpp-protocol test server at TOKENS_PER_S."""
    from adapters.base import TTSInput
    from adapters.orpheus.adapter import SnacLlamaCppAdapter
    from server.config import Settings
    from tests.llama_protocol_server import LlamaProtocolServer, script_from_tokens
    from tests.snac_fixture import frames_to_token_text, random_frames

    tokens = frames_to_token_text(random_frames(STREAM_FRAMES, seed=2))
    script = script_from_tokens(tokens, tokens_per_s=TOKENS_PER_S)
    async with LlamaProtocolServer(script) as server:
        adapter = SnacLlamaCppAdapter.from_options(Settings(
            snac_url=server.url, snac_model=str(model_dir), snac_device=device,
            snac_onnx=str(onnx_path) if onnx_path else None).model_dump())
        try:
            await adapter.warmup()
            results = {}
            for low_latency in (True, False):
                started = time.monotonic()
                first_pcm_at = None
                samples = 0
                async for chunk in adapter.synth_stream(
                        TTSInput(text="bench", low_latency=low_latency, target_chunk=28)):
                    first_pcm_at = first_pcm_at or time.monotonic()
                    samples += chunk.samples
                wall = time.monotonic() - started
                first_token_at = server.requests[-1].first_event_at
                assert first_pcm_at is not None and first_token_at is not None
                key = "low_latency" if low_latency else "default"
                results[f"{key}_wall_rtf"] = round(wall / (samples / SNAC_RATE_HZ), 3)
                results[f"{key}_first_token_to_pcm_ms"] = round(
                    1000.0 * (first_pcm_at - first_token_at), 1)
            return results
        finally:
            await adapter.aclose()


def run(ctx: PartContext) -> dict[str, Any]:
    """Measure on CPU (and CUDA when torch sees one)."""
    threads = int(ctx.param("threads") or 0) or None
    return measure(threads, ctx.param("onnx"), ctx.quick)


def measure(threads: int | None = None, onnx_path: str | None = None,
            quick: bool = False) -> dict[str, Any]:
    """`threads` sets the decoders' threads."""
    import torch

    from adapters.orpheus.model import load_snac
    from adapters.orpheus.runtime import OnnxSnac, TorchSnac, export_onnx
    from tests.snac_fixture import write_snac_checkpoint

    if threads:
        torch.set_num_threads(threads)
    schemes = (1, 3, 13) if quick else SCHEMES
    batches = (1, 4) if quick else BATCHES
    report: dict[str, Any] = {
        "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
        "frame_ms": round(FRAME_MS, 2), "load_1min_start": round(os.getloadavg()[0], 2),
        "schemes": {}, "quality": {}, "stream": {},
    }
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = write_snac_checkpoint(Path(tmp) / "snac")
        quiet_dir = write_snac_checkpoint(Path(tmp) / "quiet", silent_noise=True)
        onnx = Path(onnx_path) if onnx_path else export_onnx(load_snac(model_dir, "cpu"),
                                                             Path(tmp) / "snac.onnx")
        for device in devices:
            runners: dict[str, Any] = {"torch": TorchSnac(load_snac(model_dir, device)),
                       "onnx": OnnxSnac(onnx, device=device, threads=threads)}
            for kind, runner in runners.items():
                if kind == "onnx" and runner.device != device:
                    continue  # onnxruntime without CUDA: the CPU row covers it
                for new in schemes:
                    for batch in batches:
                        key = f"{device}/{kind}/new{new}/batch{batch}"
                        report["schemes"][key] = cost_per_new_frame(runner, new, batch)
            quiet = TorchSnac(load_snac(quiet_dir, device))
            for new in schemes:
                report["quality"][f"{device}/new{new}"] = quality(quiet, new)
            for kind in ("torch", "onnx"):
                report["stream"][f"{device}/{kind}"] = run_async(stream_through_adapter(
                    model_dir, device, onnx if kind == "onnx" else None))
    report["load_1min_end"] = round(os.getloadavg()[0], 2)
    return report
