"""Orpheus through SNAC: tokens from llama.cpp (HTTP or in-process), decoded to 24 kHz PCM here."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from adapters.base import AudioChunk, Capabilities, Health, TTSAdapter, TTSInput, Voice
from adapters.errors import BackendUnavailable, BadRequest
from adapters.orpheus.llama_http import LlamaHttpSource
from adapters.orpheus.llama_inproc import CompletionParams, LlamaInprocSource
from adapters.orpheus.stream import CONTEXT_FRAMES, Pacing, decode_stream
from adapters.orpheus.tokens import SNAC_RATE_HZ, TOKENS_PER_FRAME
from adapters.orpheus.voices import (
    EMOTION_TAGS,
    END_OF_SPEECH,
    LANGUAGES,
    ORPHEUS_VOICES,
    format_prompt,
    resolve_voice,
)
from adapters.orpheus.windows import StreamingSnacDecoder
from adapters.orpheus.worker import DecoderStats, DecodeWorker

log = logging.getLogger("morpheus.adapters.snac_llamacpp")

NAME = "snac_llamacpp"
SNAC_INSTALL_HINT = "pip install morpheus-tts[snac]"
BATCH_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class SnacConfig:
    """Everything the adapter reads from settings (keys of server/config.py, lowercased, where
    their defaults are stated)."""

    url: str  # SNAC_URL: one completion endpoint or a comma list
    model_dir: str | None  # SNAC_MODEL
    onnx_path: str | None  # SNAC_ONNX: an exported decoder: decode on onnxruntime, no torch
    device: str | None  # SNAC_DEVICE
    batch: str  # SNAC_BATCH: batch windows across streams: auto = on CUDA only
    max_batch: int  # SNAC_MAX_BATCH
    threads: int | None  # SNAC_THREADS: CPU threads per decode; None: 1 (a lane per core)
    target_chunk_tokens: int  # SNAC_TARGET_CHUNK
    first_chunk_tokens: int  # SNAC_FIRST_CHUNK
    window_frames: int  # SNAC_WINDOW_FRAMES
    kept_slice: tuple[int, int]  # SNAC_KEPT_SLICE: samples of the window kept per step
    max_window_frames: int  # SNAC_MAX_WINDOW_FRAMES
    gguf_path: str | None  # ORPHEUS_GGUF
    model_name: str  # ORPHEUS_MODEL_NAME
    max_tokens: int  # ORPHEUS_MAX_TOKENS
    temperature: float  # ORPHEUS_TEMPERATURE
    top_p: float  # ORPHEUS_TOP_P
    repetition_penalty: float  # ORPHEUS_REPETITION_PENALTY
    timeout_s: float  # ORPHEUS_TIMEOUT_S
    backoff_s: float  # UPSTREAM_BACKOFF_S: a failed upstream rests this long (doubling)
    parallel_streams: int  # PARALLEL_STREAMS
    batch_size: int  # LLAMACPP_BATCH_SIZE
    ubatch: int  # LLAMACPP_UBATCH
    extra_body: Mapping[str, Any]  # ORPHEUS_EXTRA_BODY: vendor fields, sent as-is


class SnacLlamaCppAdapter(TTSAdapter):
    """Orpheus speech tokens from llama.cpp's `/v1/completions` stream (one server or a pool
    of them, or a local GGUF run in-process when ORPHEUS_GGUF is set), decoded by SNAC in this
    process as they arrive: one decoder worker shared by every stream (adapters/snac_worker.py),
    on torch or, with SNAC_ONNX, on onnxruntime without torch."""

    name = NAME
    capabilities = Capabilities(
        native_rate_hz=SNAC_RATE_HZ,
        streams_sub_sentence=True,
        chunk_unit="tokens",
        languages=LANGUAGES,
        native_speed=False,
        emotion_tags=EMOTION_TAGS,
    )

    def __init__(self, config: SnacConfig) -> None:
        self.config = c = config
        if c.batch not in BATCH_MODES:
            raise ValueError(f"SNAC_BATCH must be one of {', '.join(BATCH_MODES)}")
        self._worker: DecodeWorker | None = None
        self._load_lock: asyncio.Lock | None = None
        self._inproc = (
            LlamaInprocSource(c.gguf_path, n_ctx=c.max_tokens + 512, n_batch=c.batch_size,
                              n_ubatch=c.ubatch, max_contexts=c.parallel_streams)
            if c.gguf_path else None
        )
        self._http = None if self._inproc else LlamaHttpSource(
            c.url, backend=NAME, model_name=c.model_name, timeout_s=c.timeout_s,
            parallel_streams=c.parallel_streams, backoff_s=c.backoff_s)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SnacLlamaCppAdapter:
        extra = options["orpheus_extra_body"]  # a JSON object, or "" for none
        return cls(SnacConfig(
            url=str(options["snac_url"]),
            model_dir=_opt_str(options["snac_model"]),
            onnx_path=_opt_str(options["snac_onnx"]),
            device=_opt_str(options["snac_device"]),
            batch=str(options["snac_batch"]),
            max_batch=int(options["snac_max_batch"]),
            threads=_opt_int(options["snac_threads"]),
            target_chunk_tokens=int(options["snac_target_chunk"]),
            first_chunk_tokens=int(options["snac_first_chunk"]),
            window_frames=int(options["snac_window_frames"]),
            kept_slice=_slice(options["snac_kept_slice"]),
            max_window_frames=int(options["snac_max_window_frames"]),
            gguf_path=_opt_str(options["orpheus_gguf"]),
            model_name=str(options["orpheus_model_name"]),
            max_tokens=int(options["orpheus_max_tokens"]),
            temperature=float(options["orpheus_temperature"]),
            top_p=float(options["orpheus_top_p"]),
            repetition_penalty=float(options["orpheus_repetition_penalty"]),
            timeout_s=float(options["orpheus_timeout_s"]),
            backoff_s=float(options["upstream_backoff_s"]),
            parallel_streams=int(options["parallel_streams"]),
            batch_size=int(options["llamacpp_batch_size"]),
            ubatch=int(options["llamacpp_ubatch"]),
            extra_body=json.loads(extra) if extra else {},
        ))

    # -- lifecycle

    async def warmup(self) -> None:
        worker = await self._decoder()
        if self._inproc is not None:
            await self._inproc.load()
        # One tiny decode allocates buffers (and picks CUDA kernels) before the first request.
        await worker.decode(np.zeros((1, TOKENS_PER_FRAME), dtype=np.int64), new_frames=0)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._inproc is not None:
            await self._inproc.aclose()
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.aclose()

    async def health(self) -> Health:
        loader = ("llama-cpp-python in-process" if self._inproc
                  else f"llama.cpp at {self.config.url}")
        reason = self._decoder_unavailable_reason()
        if reason is None and self._inproc is not None:
            reason = self._inproc.unavailable_reason()
        if reason is None and self._http is not None:
            upstreams = await self._http.pooled.health(loader)
            return replace(upstreams, vram_mb=self._vram_mb())
        return Health(ready=reason is None, backend=self.name, loader=loader,
                      vram_mb=self._vram_mb(), reason=reason)

    def voices(self) -> list[Voice]:
        return list(ORPHEUS_VOICES)

    def default_voice(self) -> str | None:
        return "tara"

    def upstreams(self) -> list[dict[str, Any]]:
        return self._http.pooled.snapshot() if self._http is not None else []

    def decoder_stats(self) -> DecoderStats | None:
        """The decoder worker's figures (None before the decoder is loaded)."""
        return self._worker.stats() if self._worker is not None else None

    # -- streaming

    async def synth_stream(self, req: TTSInput) -> AsyncIterator[AudioChunk]:
        text = req.text.strip()
        if not text:
            raise BadRequest("nothing to speak", field="input")
        worker = await self._decoder()
        voice = resolve_voice(req.voice, req.language)
        params = self._completion_params(voice.id, text, req)
        c = self.config
        # More new frames per window when the listener has buffer to spare (live buffer when
        # the orchestrator gives it, else the target chunk): less context decoded per frame.
        steady = max(1, (req.target_chunk or c.target_chunk_tokens) // TOKENS_PER_FRAME)
        first = 1 if req.low_latency else max(
            1, min(steady, c.first_chunk_tokens // TOKENS_PER_FRAME))
        pacing = Pacing(first_frames=first, steady_frames=steady,
                        max_frames=max(1, c.max_window_frames - CONTEXT_FRAMES),
                        buffer_ms=req.buffer_ms, equal_windows=worker.batch)
        # Low latency: the first frame leaves after one frame of lookahead instead of two
        # (7 tokens sooner; measured error on SNAC's random-weight twin: 3.9% vs 2.7% of peak).
        decoder = StreamingSnacDecoder(
            window_frames=c.window_frames, kept_slice=c.kept_slice,
            max_window_frames=c.max_window_frames,
            start_lookahead_frames=1 if req.low_latency else None)
        chunks = decode_stream(self._pieces(params), decoder=decoder, worker=worker,
                               pacing=pacing, backend=self.name)
        async with aclosing(chunks) as it:  # type: ignore[type-var]
            async for pcm, final in it:
                yield AudioChunk(pcm, is_final=final)

    def _completion_params(self, voice: str, text: str, req: TTSInput) -> CompletionParams:
        s, c = req.sampling, self.config
        return CompletionParams(
            prompt=format_prompt(voice, text),
            max_tokens=s.max_tokens or c.max_tokens,
            temperature=c.temperature if s.temperature is None else s.temperature,
            top_p=c.top_p if s.top_p is None else s.top_p,
            # Orpheus needs >= 1.1 for stable speech (Canopy); a lower request is raised.
            repetition_penalty=max(1.1, s.repetition_penalty or c.repetition_penalty),
            stop=(END_OF_SPEECH,),
            extra=c.extra_body,
        )

    def _pieces(self, params: CompletionParams) -> AsyncIterator[str]:
        if self._inproc is not None:
            return self._inproc.stream(params)
        assert self._http is not None
        return self._http.stream(params)

    # -- the decoder

    async def _decoder(self) -> DecodeWorker:
        if self._worker is not None:
            return self._worker
        if self._load_lock is None:
            self._load_lock = asyncio.Lock()
        async with self._load_lock:
            if self._worker is None:
                reason = self._decoder_unavailable_reason()
                if reason is not None:
                    raise BackendUnavailable(reason, backend=NAME)
                try:
                    runner = await asyncio.to_thread(self._load_runner)
                except (ImportError, OSError, ValueError, RuntimeError) as e:
                    raise BackendUnavailable(f"cannot load SNAC: {e}", backend=NAME) from e
                c = self.config
                batch = c.batch == "on" or (c.batch == "auto" and runner.device != "cpu")
                lanes = 1 if runner.device != "cpu" else max(
                    1, (os.cpu_count() or 1) // self._threads())
                self._worker = DecodeWorker(runner, batch=batch, lanes=lanes,
                                            max_batch=c.max_batch, backend=NAME)
                log.info("SNAC decoder: %s on %s, %s", runner.kind, runner.device,
                         "batched across streams" if batch else
                         f"one window at a time on {lanes} lane(s) of {self._threads()} thread(s)")
        return self._worker

    def _threads(self) -> int:
        """CPU threads per decode: SNAC_THREADS, else 1 (and one lane per core)."""
        return self.config.threads or 1

    def _load_runner(self) -> Any:
        c = self.config
        if c.onnx_path:
            from adapters.orpheus.runtime import OnnxSnac  # onnxruntime only: never imports torch

            return OnnxSnac(c.onnx_path, device=c.device, threads=self._threads())
        from adapters.orpheus.model import load_snac
        from adapters.orpheus.runtime import TorchSnac

        return TorchSnac(load_snac(str(c.model_dir), c.device), threads=self._threads())

    def _decoder_unavailable_reason(self) -> str | None:
        if self.config.onnx_path:
            if importlib.util.find_spec("onnxruntime") is None:
                return "onnxruntime not installed (SNAC_ONNX needs it)"
            if not Path(self.config.onnx_path).is_file():
                return f"SNAC_ONNX {self.config.onnx_path} does not exist"
            return None
        missing = [m for m in ("torch", "snac") if importlib.util.find_spec(m) is None]
        if missing:
            return (f"{' and '.join(missing)} not installed ({SNAC_INSTALL_HINT}; or set "
                    "SNAC_ONNX to an exported decoder)")
        if not self.config.model_dir:
            return ("SNAC_MODEL not set: a local directory with config.json and "
                    "pytorch_model.bin (or model.safetensors) of hubertsiuzdak/snac_24khz")
        root = Path(self.config.model_dir)
        if not (root / "config.json").is_file():
            return f"SNAC_MODEL {root} has no config.json"
        if not any((root / w).is_file() for w in ("pytorch_model.bin", "model.safetensors")):
            return f"SNAC_MODEL {root} has no pytorch_model.bin or model.safetensors"
        return None

    def _vram_mb(self) -> float | None:
        runner = self._worker.runner if self._worker is not None else None
        if runner is None or runner.kind != "torch" or not runner.device.startswith("cuda"):
            return None
        import torch

        try:
            return torch.cuda.memory_allocated(runner.device) / 2**20
        except RuntimeError:
            return None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _slice(value: str) -> tuple[int, int]:
    """SNAC_KEPT_SLICE "2048,4096" -> (2048, 4096)."""
    start, end = (int(p) for p in value.split(","))
    return start, end
