"""SNAC speed: decode cost per frame by window, streaming RTF at 100 tokens/s, token-to-PCM latency."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from dsp.snac_codec import SAMPLES_PER_FRAME, SNAC_RATE_HZ, StreamingSnacDecoder, load_snac

WINDOWS = (4, 8, 12)
RUNS = 10
STREAM_FRAMES = 36  # about 3 s of speech
TOKENS_PER_S = 100.0
FRAME_MS = 1000.0 * SAMPLES_PER_FRAME / SNAC_RATE_HZ


def decode_cost_ms_per_frame(model: Any, frames: int, runs: int = RUNS) -> float:
    """Median wall time of one `frames`-frame SNAC decode, divided by `frames`."""
    import torch

    from tests.snac_fixture import random_frames

    device = next(model.parameters()).device
    decoder = StreamingSnacDecoder(model, max_window_frames=frames)
    for frame in random_frames(frames, seed=frames):
        decoder.push(frame)
    times = []
    for i in range(runs + 2):  # two warm-up runs
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        decoder._decode(0, frames)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - started)
    return 1000.0 * statistics.median(times) / frames


def decoder_compute_rtf(model: Any, *, one_by_one: bool) -> float:
    """Decode time / audio time for a whole utterance through StreamingSnacDecoder: frames
    arriving one at a time (a 4-frame window per frame) or all at once (grown windows)."""
    from tests.snac_fixture import random_frames

    decoder = StreamingSnacDecoder(model)
    started = time.perf_counter()
    for frame in random_frames(STREAM_FRAMES, seed=1):
        decoder.push(frame)
        if one_by_one:
            decoder.decode_ready()
    decoder.decode_ready()
    decoder.flush()
    elapsed = time.perf_counter() - started
    return elapsed / (STREAM_FRAMES * FRAME_MS / 1000.0)


async def stream_through_adapter(model_dir: Path, device: str) -> dict[str, float]:
    """The adapter against the llama.cpp-protocol test server at TOKENS_PER_S."""
    from adapters.base import TTSInput
    from adapters.snac_llamacpp import SnacLlamaCppAdapter
    from tests.llama_protocol_server import LlamaProtocolServer, script_from_tokens
    from tests.snac_fixture import frames_to_token_text, random_frames

    tokens = frames_to_token_text(random_frames(STREAM_FRAMES, seed=2))
    script = script_from_tokens(tokens, tokens_per_s=TOKENS_PER_S)
    async with LlamaProtocolServer(script) as server:
        adapter = SnacLlamaCppAdapter.from_options(
            {"snac_url": server.url, "snac_model": str(model_dir), "snac_device": device})
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
                results[f"{key}_wall_rtf"] = wall / (samples / SNAC_RATE_HZ)
                results[f"{key}_first_token_to_pcm_ms"] = 1000.0 * (first_pcm_at - first_token_at)
            return results
        finally:
            await adapter.aclose()


def run(threads: int | None = None) -> dict[str, Any]:
    """Measure on CPU (and CUDA when available); `threads` sets torch's CPU threads."""
    import torch

    from tests.snac_fixture import write_snac_checkpoint

    if threads:
        torch.set_num_threads(threads)

    report: dict[str, Any] = {
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "frame_ms": round(FRAME_MS, 2),
        "stream_tokens_per_s": TOKENS_PER_S,
        "stream_frames": STREAM_FRAMES,
        # the token source alone: 7 tokens per 85.3 ms frame at TOKENS_PER_S
        "source_rtf": round(7 / TOKENS_PER_S / (FRAME_MS / 1000.0), 3),
    }
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = write_snac_checkpoint(Path(tmp) / "snac")
        for device in devices:
            model = load_snac(model_dir, device)
            section: dict[str, Any] = {}
            for w in WINDOWS:
                per_frame = decode_cost_ms_per_frame(model, w)
                section[f"decode_ms_per_frame_w{w}"] = round(per_frame, 2)
                # streaming keeps 1 frame of left and 2 of right context: W - 3 new frames
                section[f"decode_ms_per_new_frame_w{w}"] = round(per_frame * w / (w - 3), 2)
            section["decoder_rtf_one_by_one"] = round(decoder_compute_rtf(model, one_by_one=True), 3)
            section["decoder_rtf_all_at_once"] = round(
                decoder_compute_rtf(model, one_by_one=False), 3)
            streamed = asyncio.run(stream_through_adapter(model_dir, device))
            section.update({k: round(v, 3) for k, v in streamed.items()})
            report[device] = section
            del model
    _print(report)
    return report


def _print(report: dict[str, Any]) -> None:
    print(f"SNAC 24 kHz (random weights), torch {report['torch']}, "
          f"{report['cpu_threads']} CPU threads; 1 frame = {report['frame_ms']} ms of audio")
    for device in ("cpu", "cuda"):
        section = report.get(device)
        if section is None:
            continue
        print(f"[{device}]")
        for w in WINDOWS:
            ms = section[f"decode_ms_per_frame_w{w}"]
            new = section[f"decode_ms_per_new_frame_w{w}"]
            print(f"  decode, window {w:>2}: {ms:7.2f} ms per decoded frame; streaming "
                  f"{new:7.2f} ms per new frame ({FRAME_MS / new:5.1f}x real time)")
        print(f"  decoder compute RTF, frames one by one: {section['decoder_rtf_one_by_one']}")
        print(f"  decoder compute RTF, frames all at once: {section['decoder_rtf_all_at_once']}")
        for key in ("low_latency", "default"):
            print(f"  adapter at {report['stream_tokens_per_s']:g} tokens/s ({key}): wall RTF "
                  f"{section[f'{key}_wall_rtf']} (source alone {report['source_rtf']}), "
                  f"first audio token -> first PCM "
                  f"{section[f'{key}_first_token_to_pcm_ms']:.0f} ms")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    run(parser.parse_args().threads)


if __name__ == "__main__":
    main()
