"""Orpheus tokens from a local GGUF inside this process, through llama-cpp-python (optional)."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import threading
from collections.abc import AsyncGenerator, Iterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, cast

from adapters.base import iterate_in_thread
from adapters.errors import BackendUnavailable, EngineError

log = logging.getLogger("morpheus.adapters.llama_inproc")

INSTALL_HINT = "pip install morpheus-tts[orpheus]"


@dataclass(frozen=True)
class CompletionParams:
    """One Orpheus completion: the prompt and how to sample it."""

    prompt: str
    max_tokens: int
    temperature: float
    top_p: float
    repetition_penalty: float
    stop: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)  # engine-specific (grammar, seed, ...)


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


@dataclass
class _Slot:
    """One llama.cpp context; `busy` is held from the first token until the generator closed."""

    llama: Any
    busy: threading.Lock = field(default_factory=threading.Lock)


class LlamaInprocSource:
    """Streams completion text from a GGUF loaded with llama-cpp-python.

    A `Llama` object is not thread-safe and serves one completion at a time. Concurrent streams
    each get their own context from a pool that grows on demand up to `max_contexts`
    (PARALLEL_STREAMS): on CPU the weights are memory-mapped and shared between contexts, so an
    extra one costs its KV cache; on a GPU every context holds its own copy of the offloaded
    weights, and a context that fails to load (out of memory) just leaves the stream waiting for
    a free one. True batched parallel decoding needs llama.cpp's server (`-np N`) instead.
    """

    def __init__(
        self,
        gguf_path: str,
        *,
        n_ctx: int,
        n_batch: int,  # LLAMACPP_BATCH_SIZE
        n_ubatch: int,  # LLAMACPP_UBATCH
        max_contexts: int,  # PARALLEL_STREAMS
        n_gpu_layers: int = -1,  # all of them (llama.cpp's own -1): as far as the GPU takes
        n_threads: int | None = None,
    ) -> None:
        self.gguf_path = gguf_path
        self._kwargs: dict[str, Any] = {
            "model_path": gguf_path, "n_ctx": n_ctx, "n_batch": n_batch, "n_ubatch": n_ubatch,
            "n_gpu_layers": n_gpu_layers, "n_threads": n_threads or os.cpu_count() or 1,
            "verbose": False,
        }
        self._max_contexts = max(1, max_contexts)
        self._slots: list[_Slot] = []
        self._free: asyncio.Queue[_Slot] | None = None
        self._grow_lock: asyncio.Lock | None = None
        self._loading = 0

    def unavailable_reason(self) -> str | None:
        if not llama_cpp_available():
            return f"llama-cpp-python is not installed ({INSTALL_HINT})"
        if not os.path.isfile(self.gguf_path):
            return f"ORPHEUS_GGUF {self.gguf_path} does not exist"
        return None

    async def load(self) -> None:
        """Load the first context (the model) so the first request does not pay for it."""
        self._init_pool()
        if not self._slots:
            async with self._pool_lock():
                if not self._slots:
                    slot = await self._new_slot()
                    assert self._free is not None
                    self._free.put_nowait(slot)

    async def stream(self, params: CompletionParams) -> AsyncGenerator[str, None]:
        """Completion text pieces, as they are generated. Closing the iterator stops generation."""
        extra = _completion_kwargs(params.extra)
        slot = await self._acquire()

        def pieces() -> Iterator[str]:
            # `busy` is held for the generator's whole life and released by whichever worker
            # thread finishes or closes it, so a cancelled generation never overlaps the next
            # stream's use of the same context (that one waits in its own worker thread).
            with slot.busy:
                for event in slot.llama.create_completion(
                    params.prompt, max_tokens=params.max_tokens, temperature=params.temperature,
                    top_p=params.top_p, repeat_penalty=params.repetition_penalty,
                    stop=list(params.stop), stream=True, **extra,
                ):
                    text = event["choices"][0].get("text") or ""
                    if text:
                        yield text

        try:
            texts = cast(AsyncGenerator[str, None], iterate_in_thread(pieces))
            async with aclosing(texts) as it:
                async for piece in it:
                    yield piece
        except (RuntimeError, ValueError, OSError) as e:
            raise EngineError(f"llama-cpp-python failed: {e}", backend="snac_llamacpp") from e
        finally:
            if self._free is not None:
                self._free.put_nowait(slot)

    async def aclose(self) -> None:
        slots, self._slots = self._slots, []
        for slot in slots:
            closer = getattr(slot.llama, "close", None)
            if closer is not None:
                await asyncio.to_thread(closer)
        self._free = None

    # -- pool

    def _init_pool(self) -> None:
        if self._free is None:
            self._free = asyncio.Queue()
            self._grow_lock = asyncio.Lock()

    def _pool_lock(self) -> asyncio.Lock:
        assert self._grow_lock is not None
        return self._grow_lock

    async def _acquire(self) -> _Slot:
        self._init_pool()
        assert self._free is not None
        if self._free.empty() and len(self._slots) + self._loading < self._max_contexts:
            self._loading += 1
            try:
                slot = await self._new_slot()
                return slot
            except BackendUnavailable:
                if not self._slots:
                    raise
                log.warning("could not load another llama.cpp context; waiting for a free one")
            finally:
                self._loading -= 1
        return await self._free.get()

    async def _new_slot(self) -> _Slot:
        reason = self.unavailable_reason()
        if reason is not None:
            raise BackendUnavailable(reason, backend="snac_llamacpp")

        def build() -> Any:
            import llama_cpp

            return llama_cpp.Llama(**self._kwargs)

        try:
            llama = await asyncio.to_thread(build)
        except (ValueError, RuntimeError, OSError) as e:
            raise BackendUnavailable(f"cannot load {self.gguf_path}: {e}",
                                     backend="snac_llamacpp") from e
        slot = _Slot(llama)
        self._slots.append(slot)
        log.info("llama.cpp context %d/%d loaded from %s", len(self._slots), self._max_contexts,
                 self.gguf_path)
        return slot



# create_completion() arguments that may come through ORPHEUS_EXTRA_BODY.
_PASSTHROUGH = ("seed", "top_k", "min_p", "typical_p", "presence_penalty", "frequency_penalty")


def _completion_kwargs(extra: Mapping[str, Any]) -> dict[str, Any]:
    kwargs = {k: v for k, v in extra.items() if k in _PASSTHROUGH}
    if isinstance(extra.get("grammar"), str):
        from llama_cpp import LlamaGrammar

        kwargs["grammar"] = LlamaGrammar.from_string(extra["grammar"], verbose=False)
    return kwargs
