"""Orpheus tokens from llama.cpp-protocol servers: streaming `/v1/completions`, one or a pool.

`SNAC_URL` may list several completion endpoints (comma-separated: llama-server replicas,
vLLM pods). Each stream goes to the one with the fewest streams in flight; one that refuses,
times out or answers 5xx rests for a backoff period and is probed on `/health` before it takes
streams again. A failure before the first token moves the request to another upstream
unseen; after tokens went out it raises `UpstreamLost`, and the orchestrator continues from
the first unheard word on another upstream of the same backend (adapters/upstream/pooled.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

import httpx

from adapters.errors import BackendTimeout, EngineError
from adapters.orpheus.llama_inproc import CompletionParams
from adapters.upstream.http_client import status_error, transport_error
from adapters.upstream.pool import parse_addresses
from adapters.upstream.pooled import PROBE_TIMEOUT_S, PooledUpstreams

log = logging.getLogger("morpheus.adapters.llama_http")

DRAIN_AFTER_DONE_S = 1.0
MAX_CONNECT_S = 10.0  # connecting never waits the whole (long) generation timeout


class LlamaHttpSource:
    """Completion text pieces from the least busy healthy upstream of `urls`."""

    def __init__(self, urls: str, *, backend: str, model_name: str, timeout_s: float,
                 parallel_streams: int, backoff_s: float) -> None:
        self.backend = backend
        self.model_name = model_name
        self.timeout_s = timeout_s
        self._parallel = max(1, parallel_streams)
        self.pooled = PooledUpstreams(backend, parse_addresses(urls), probe=self.probe,
                                      backoff_s=backoff_s,
                                      missing="SNAC_URL is not set: list the llama.cpp "
                                              "completion endpoint(s), comma-separated")
        self._client: httpx.AsyncClient | None = None

    def stream(self, params: CompletionParams) -> AsyncIterator[str]:
        """Text pieces as they are generated; closing the iterator closes the request."""
        return self.pooled.stream(lambda up: self._pieces(up.address, params))

    async def probe(self, url: str) -> str | None:
        """None when `url`'s server answers /health (or has none: 404), else why not."""
        parts = urlsplit(url)
        health_url = f"{parts.scheme}://{parts.netloc}/health"
        try:
            resp = await self._http().get(health_url, timeout=PROBE_TIMEOUT_S)
        except httpx.HTTPError as e:
            return f"upstream {url} unreachable: {e!r}"
        if resp.status_code == 503:
            return f"upstream {parts.netloc} is loading its model"
        return None  # any other answer (404 included: not every server has /health) = up

    async def aclose(self) -> None:
        await self.pooled.aclose()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # -- one upstream

    async def _pieces(self, url: str, params: CompletionParams) -> AsyncGenerator[str, None]:
        body: dict[str, Any] = {
            "model": self.model_name,
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
        try:
            # `async with` closes the response, and with it the connection, the moment this
            # generator is closed: a cancelled stream stops llama.cpp generating at once.
            async with self._http().stream("POST", url, json=body) as resp:
                if resp.status_code >= 400:
                    raise status_error(resp.status_code, (await resp.aread())[:300], url,
                                       self.backend)
                lines = resp.aiter_lines()
                async for line in lines:
                    text, done = parse_sse_line(line, url, self.backend)
                    if text:
                        yield text
                    if done:
                        # Read on to the end of the body so the connection can be kept alive.
                        with suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(_drain(lines), DRAIN_AFTER_DONE_S)
                        return
        except httpx.TimeoutException as e:
            if not isinstance(e, httpx.ConnectTimeout):
                raise BackendTimeout(f"{url} sent nothing for {self.timeout_s:g} s",
                                     backend=self.backend) from e
            raise transport_error(e, url, self.backend) from e
        except httpx.HTTPError as e:
            raise transport_error(e, url, self.backend) from e

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            t = self.timeout_s
            n = self._parallel * max(1, len(self.pooled.addresses))
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(t, connect=min(t, MAX_CONNECT_S)),
                limits=httpx.Limits(max_connections=2 * n, max_keepalive_connections=n),
            )
        return self._client


def parse_sse_line(line: str, url: str, backend: str) -> tuple[str, bool]:
    """One SSE line -> (text, stream finished). OpenAI-style `choices[0].text` (llama.cpp
    /v1/completions, LM Studio, vLLM, koboldcpp) or llama.cpp's native `content`/`stop`."""
    if not line or line.startswith(":"):
        return "", False
    if line.startswith("error:"):
        raise EngineError(f"{url} reported: {line[6:].strip()[:300]}", backend=backend)
    if not line.startswith("data:"):
        return "", False  # event:, id:, retry: fields carry nothing for us
    data = line[5:].strip()
    if data == "[DONE]":
        return "", True
    try:
        obj = json.loads(data)
    except json.JSONDecodeError as e:
        raise EngineError(f"{url} sent a malformed event: {data[:120]!r}",
                          backend=backend) from e
    if "error" in obj:
        raise EngineError(f"{url} reported: {json.dumps(obj['error'])[:300]}", backend=backend)
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


__all__ = ["LlamaHttpSource", "parse_sse_line"]
