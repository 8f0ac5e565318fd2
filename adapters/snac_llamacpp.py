"""Orpheus through SNAC: tokens from llama.cpp (HTTP or in-process), decoded to 24 kHz PCM here."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from adapters.base import AudioChunk, Capabilities, Health, TTSAdapter, TTSInput, Voice
from adapters.errors import (
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    EngineError,
    NoAudioError,
)
from adapters.llama_inproc import CompletionParams, LlamaInprocSource
from adapters.orpheus_voices import (
    EMOTION_TAGS,
    END_OF_SPEECH,
    LANGUAGES,
    ORPHEUS_VOICES,
    format_prompt,
    resolve_voice,
)
from adapters.upstream import status_error, transport_error
from dsp.snac_codec import (
    SAMPLES_PER_FRAME,
    SNAC_RATE_HZ,
    TOKENS_PER_FRAME,
    StreamingSnacDecoder,
    TokenParser,
    split_frames,
)

log = logging.getLogger("morpheus.adapters.snac_llamacpp")

NAME = "snac_llamacpp"
SNAC_INSTALL_HINT = "pip install morpheus-tts[snac]"
# A wrong upstream (a chat model, a misrouted URL) streams text forever; give up early.
MAX_PIECES_WITHOUT_AUDIO = 256
DRAIN_AFTER_DONE_S = 1.0

T = TypeVar("T")


@dataclass(frozen=True)
class SnacConfig:
    """Everything the adapter reads from settings (keys of server/config.py, lowercased)."""

    url: str = "http://127.0.0.1:8080/v1/completions"
    model_dir: str | None = None
    device: str | None = None
    target_chunk_tokens: int = 28
    first_chunk_tokens: int = 8
    window_frames: int = 4
    kept_slice: tuple[int, int] = (SAMPLES_PER_FRAME, 2 * SAMPLES_PER_FRAME)
    max_window_frames: int = 16
    gguf_path: str | None = None
    model_name: str = "orpheus"
    max_tokens: int = 8192
    temperature: float = 0.6
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    timeout_s: float = 120.0
    parallel_streams: int = 4
    batch_size: int = 512
    ubatch: int = 512
    extra_body: Mapping[str, Any] = field(default_factory=dict)  # vendor fields, sent as-is


class SnacLlamaCppAdapter(TTSAdapter):
    """Orpheus speech tokens from llama.cpp's `/v1/completions` stream (or from a local GGUF run
    in-process when ORPHEUS_GGUF is set), decoded by SNAC in this process as they arrive."""

    name = NAME
    capabilities = Capabilities(
        native_rate_hz=SNAC_RATE_HZ,
        streams_sub_sentence=True,
        chunk_unit="tokens",
        languages=LANGUAGES,
        native_speed=False,
        emotion_tags=EMOTION_TAGS,
    )

    def __init__(self, config: SnacConfig | None = None) -> None:
        self.config = config or SnacConfig()
        self._client: httpx.AsyncClient | None = None
        self._model: Any = None
        self._load_lock: asyncio.Lock | None = None
        self._decode_lock = threading.Lock()  # one SNAC decode at a time per model
        self._inproc = (
            LlamaInprocSource(
                self.config.gguf_path, n_ctx=self.config.max_tokens + 512,
                n_batch=self.config.batch_size, n_ubatch=self.config.ubatch,
                max_contexts=self.config.parallel_streams,
            )
            if self.config.gguf_path else None
        )

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SnacLlamaCppAdapter:
        d = SnacConfig()

        def get(key: str, default: Any) -> Any:
            value = options.get(key)
            return default if value is None or value == "" else value

        extra = get("orpheus_extra_body", {})
        if isinstance(extra, str):
            extra = json.loads(extra)
        return cls(SnacConfig(
            url=str(get("snac_url", d.url)),
            model_dir=_opt_str(get("snac_model", None)),
            device=_opt_str(get("snac_device", None)),
            target_chunk_tokens=int(get("snac_target_chunk", d.target_chunk_tokens)),
            first_chunk_tokens=int(get("snac_first_chunk", d.first_chunk_tokens)),
            window_frames=int(get("snac_window_frames", d.window_frames)),
            kept_slice=_slice(get("snac_kept_slice", d.kept_slice)),
            max_window_frames=int(get("snac_max_window_frames", d.max_window_frames)),
            gguf_path=_opt_str(get("orpheus_gguf", None)),
            model_name=str(get("orpheus_model_name", d.model_name)),
            max_tokens=int(get("orpheus_max_tokens", d.max_tokens)),
            temperature=float(get("orpheus_temperature", d.temperature)),
            top_p=float(get("orpheus_top_p", d.top_p)),
            repetition_penalty=float(get("orpheus_repetition_penalty", d.repetition_penalty)),
            timeout_s=float(get("orpheus_timeout_s", d.timeout_s)),
            parallel_streams=int(get("parallel_streams", d.parallel_streams)),
            batch_size=int(get("llamacpp_batch_size", d.batch_size)),
            ubatch=int(get("llamacpp_ubatch", d.ubatch)),
            extra_body=dict(extra),
        ))

    # -- lifecycle

    async def warmup(self) -> None:
        model = await self._snac()
        if self._inproc is not None:
            await self._inproc.load()
        else:
            self._http()
        # One tiny decode allocates buffers (and picks CUDA kernels) before the first request.
        decoder = self._new_decoder(model)
        decoder.push((0,) * TOKENS_PER_FRAME)
        await self._in_decode_thread(decoder.flush)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        if self._inproc is not None:
            await self._inproc.aclose()
        self._model = None

    async def health(self) -> Health:
        loader = "llama-cpp-python in-process" if self._inproc else f"llama.cpp at {self.config.url}"
        reason = self._snac_unavailable_reason()
        if reason is None and self._inproc is not None:
            reason = self._inproc.unavailable_reason()
        if reason is None and self._inproc is None:
            reason = await self._probe_upstream()
        return Health(ready=reason is None, backend=self.name, loader=loader,
                      vram_mb=self._vram_mb(), reason=reason)

    def voices(self) -> list[Voice]:
        return list(ORPHEUS_VOICES)

    def default_voice(self) -> str | None:
        return "tara"

    # -- streaming

    async def synth_stream(self, req: TTSInput) -> AsyncIterator[AudioChunk]:
        text = req.text.strip()
        if not text:
            raise BadRequest("nothing to speak", field="input")
        model = await self._snac()
        voice = resolve_voice(req.voice, req.language)
        params = self._completion_params(voice.id, text, req)
        # Low latency: the first frame leaves after one frame of lookahead instead of two
        # (7 tokens sooner; measured error on SNAC's random-weight twin: 3.9% vs 2.7% of peak).
        decoder = self._new_decoder(model, start_lookahead_frames=1 if req.low_latency else None)
        parser = TokenParser()
        target_frames = max(1, (req.target_chunk or self.config.target_chunk_tokens)
                            // TOKENS_PER_FRAME)
        first_frames = 1 if req.low_latency else max(
            1, min(target_frames, self.config.first_chunk_tokens // TOKENS_PER_FRAME))
        yielded = False
        pieces_without_audio = 0
        async with aclosing(self._pieces(params)) as pieces:
            async for piece in pieces:
                codes = parser.feed(piece)
                for frame in split_frames(codes):
                    decoder.push(frame)
                if parser.stats.audio_tokens == 0:
                    pieces_without_audio += 1
                    if pieces_without_audio > MAX_PIECES_WITHOUT_AUDIO:
                        raise NoAudioError(_no_audio_message(parser, "gave up: upstream streams "
                                                             "text, not Orpheus audio tokens"),
                                           backend=self.name)
                want = (target_frames if yielded else first_frames) * SAMPLES_PER_FRAME
                while decoder.ready_samples >= want:
                    # When the source ran ahead, one wide window decodes everything ready: it
                    # costs far less per frame than many small ones.
                    pcm = await self._in_decode_thread(decoder.decode_ready)
                    yield AudioChunk(pcm)
                    yielded = True
                    want = target_frames * SAMPLES_PER_FRAME
        parser.finish()
        if decoder.frames_received == 0:
            raise NoAudioError(_no_audio_message(parser, "upstream finished"), backend=self.name)
        tail = await self._in_decode_thread(decoder.flush)
        yield AudioChunk(tail, is_final=True)

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

    def _pieces(self, params: CompletionParams) -> AsyncGenerator[str, None]:
        if self._inproc is not None:
            return self._inproc.stream(params)
        return self._http_pieces(params)

    async def _http_pieces(self, params: CompletionParams) -> AsyncGenerator[str, None]:
        body: dict[str, Any] = {
            "model": self.config.model_name,
            "prompt": params.prompt,
            "stream": True,
            "max_tokens": params.max_tokens,
            "n_predict": params.max_tokens,  # llama.cpp's native name
            "temperature": params.temperature,
            "top_p": params.top_p,
            "repeat_penalty": params.repetition_penalty,  # llama.cpp / LM Studio / koboldcpp
            "repetition_penalty": params.repetition_penalty,  # vLLM
            "stop": list(params.stop),
            "cache_prompt": True,  # reuse the KV cache of the shared prompt prefix
            **params.extra,
        }
        url = self.config.url
        try:
            # `async with` closes the response, and with it the connection, the moment this
            # generator is closed: a cancelled stream stops llama.cpp generating at once.
            async with self._http().stream("POST", url, json=body) as resp:
                if resp.status_code >= 400:
                    raise status_error(resp.status_code, (await resp.aread())[:300], url, NAME)
                lines = resp.aiter_lines()
                async for line in lines:
                    text, done = _parse_sse_line(line, url)
                    if text:
                        yield text
                    if done:
                        # Read on to the end of the body so the connection can be kept alive.
                        with suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(_drain(lines), DRAIN_AFTER_DONE_S)
                        return
        except httpx.TimeoutException as e:
            if not isinstance(e, httpx.ConnectTimeout):
                raise BackendTimeout(f"{url} sent nothing for {self.config.timeout_s:g} s",
                                     backend=NAME) from e
            raise transport_error(e, url, NAME) from e
        except httpx.HTTPError as e:
            raise transport_error(e, url, NAME) from e

    # -- helpers

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            t = self.config.timeout_s
            n = max(1, self.config.parallel_streams)
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(t, connect=min(t, 10.0)),
                limits=httpx.Limits(max_connections=2 * n, max_keepalive_connections=n),
            )
        return self._client

    def _new_decoder(self, model: Any, *,
                     start_lookahead_frames: int | None = None) -> StreamingSnacDecoder:
        c = self.config
        return StreamingSnacDecoder(model, window_frames=c.window_frames,
                                    kept_slice=c.kept_slice, max_window_frames=c.max_window_frames,
                                    start_lookahead_frames=start_lookahead_frames)

    async def _in_decode_thread(self, fn: Callable[..., T], *args: Any) -> T:
        def locked() -> T:
            with self._decode_lock:
                return fn(*args)

        try:
            return await asyncio.to_thread(locked)
        except RuntimeError as e:  # torch raises RuntimeError for device and kernel failures
            raise EngineError(f"SNAC decode failed: {e}", backend=NAME) from e

    async def _snac(self) -> Any:
        if self._model is not None:
            return self._model
        if self._load_lock is None:
            self._load_lock = asyncio.Lock()
        async with self._load_lock:
            if self._model is None:
                reason = self._snac_unavailable_reason()
                if reason is not None:
                    raise BackendUnavailable(reason, backend=NAME)
                from dsp.snac_codec import load_snac

                try:
                    self._model = await asyncio.to_thread(
                        load_snac, str(self.config.model_dir), self.config.device)
                except (ImportError, OSError, ValueError, RuntimeError) as e:
                    raise BackendUnavailable(f"cannot load SNAC: {e}", backend=NAME) from e
        return self._model

    def _snac_unavailable_reason(self) -> str | None:
        missing = [m for m in ("torch", "snac") if importlib.util.find_spec(m) is None]
        if missing:
            return f"{' and '.join(missing)} not installed ({SNAC_INSTALL_HINT})"
        if not self.config.model_dir:
            return ("SNAC_MODEL not set: a local directory with config.json and "
                    "pytorch_model.bin (or model.safetensors) of hubertsiuzdak/snac_24khz")
        root = Path(self.config.model_dir)
        if not (root / "config.json").is_file():
            return f"SNAC_MODEL {root} has no config.json"
        if not any((root / w).is_file() for w in ("pytorch_model.bin", "model.safetensors")):
            return f"SNAC_MODEL {root} has no pytorch_model.bin or model.safetensors"
        return None

    async def _probe_upstream(self) -> str | None:
        parts = urlsplit(self.config.url)
        health_url = f"{parts.scheme}://{parts.netloc}/health"
        try:
            resp = await self._http().get(health_url, timeout=2.0)
        except httpx.HTTPError as e:
            return f"upstream {self.config.url} unreachable: {e!r}"
        if resp.status_code == 503:
            return f"upstream {parts.netloc} is loading its model"
        return None  # any other answer (404 included: not every server has /health) = up

    def _vram_mb(self) -> float | None:
        if self._model is None:
            return None
        try:
            param = next(self._model.parameters())
            if param.device.type != "cuda":
                return None
            import torch

            return torch.cuda.memory_allocated(param.device) / 2**20
        except (StopIteration, RuntimeError):
            return None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _slice(value: Any) -> tuple[int, int]:
    """`(2048, 4096)`, `[2048, 4096]` or "2048,4096" -> (2048, 4096)."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    start, end = (int(p) for p in parts)
    return start, end


def _parse_sse_line(line: str, url: str) -> tuple[str, bool]:
    """One SSE line -> (text, stream finished). OpenAI-style `choices[0].text` (llama.cpp
    /v1/completions, LM Studio, vLLM, koboldcpp) or llama.cpp's native `content`/`stop`."""
    if not line or line.startswith(":"):
        return "", False
    if line.startswith("error:"):
        raise EngineError(f"{url} reported: {line[6:].strip()[:300]}", backend=NAME)
    if not line.startswith("data:"):
        return "", False  # event:, id:, retry: fields carry nothing for us
    data = line[5:].strip()
    if data == "[DONE]":
        return "", True
    try:
        obj = json.loads(data)
    except json.JSONDecodeError as e:
        raise EngineError(f"{url} sent a malformed event: {data[:120]!r}", backend=NAME) from e
    if "error" in obj:
        raise EngineError(f"{url} reported: {json.dumps(obj['error'])[:300]}", backend=NAME)
    choices = obj.get("choices")
    if choices:
        choice = choices[0]
        if choice.get("finish_reason") == "length":
            log.warning("%s hit max_tokens; the speech may be cut short", url)
        return choice.get("text") or "", False
    return obj.get("content") or "", bool(obj.get("stop"))


async def _drain(lines: AsyncIterator[str]) -> None:
    async for _ in lines:
        pass


def _no_audio_message(parser: TokenParser, what: str) -> str:
    s = parser.stats
    return (f"{what} without speech: {s.audio_tokens} audio tokens, {s.frames} good frames, "
            f"{s.bad_frames} bad frames, {s.tail_tokens_dropped} trailing tokens")
