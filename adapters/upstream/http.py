"""The base of adapters that speak HTTP to a pool of upstreams (openai_tts, xtts, coqui, ...).

It owns what those adapters share beyond adapters/upstream.py: the lazily built keep-alive
client and the pool built from the backend's URL setting, streamed requests whose every
failure is a typed error, audio bodies decoded into AudioChunks as bytes arrive, `health()`
from each upstream's cheap probe, and `upstreams()` for /adapters. A subclass names its URL
setting, a probe path and its protocol; nothing here knows an engine.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import httpx

from adapters.base import AudioChunk, Health, TTSAdapter
from adapters.errors import (
    BackendUnavailable,
    EngineError,
    MalformedAudio,
    NoAudioError,
    TTSError,
)
from adapters.upstream.pool import (
    DEFAULT_BACKOFF_S,
    Timeouts,
    Upstream,
    UpstreamPool,
    http_client,
    parse_addresses,
    status_error,
    stream_from_pool,
    transport_error,
)
from dsp.decoders import DecodeError, StreamDecoder

PROBE_TIMEOUT_S = 2.0
ERROR_BODY_BYTES = 2000  # how much of an error answer is read to explain it


@dataclass(frozen=True)
class UpstreamConfig:
    """The pool a backend's URL setting lists, with the shared UPSTREAM_* settings."""

    addresses: tuple[str, ...] = ()
    timeouts: Timeouts = Timeouts()
    backoff_s: float = DEFAULT_BACKOFF_S

    @classmethod
    def from_options(cls, options: Mapping[str, Any], url_key: str) -> UpstreamConfig:
        d = Timeouts()
        return cls(
            addresses=tuple(parse_addresses(options.get(url_key) or "")),
            timeouts=Timeouts(
                connect_s=float(options.get("upstream_connect_timeout_s") or d.connect_s),
                read_s=float(options.get("upstream_read_timeout_s") or d.read_s)),
            backoff_s=float(options.get("upstream_backoff_s") or DEFAULT_BACKOFF_S),
        )


class HttpUpstreamAdapter(TTSAdapter):
    """An engine behind HTTP upstreams; subclasses implement `synth_stream` with `pooled()`."""

    url_setting: ClassVar[str] = "URL"  # the setting that lists the upstreams, for messages
    probe_path: ClassVar[str] = "/"  # a cheap GET; any answer below 500 means "up"

    def __init__(self, upstream: UpstreamConfig, *, headers: dict[str, str] | None = None) -> None:
        self.upstream = upstream
        self._headers = headers
        self._client: httpx.AsyncClient | None = None
        self.pool = (UpstreamPool(self.name, upstream.addresses, backoff_s=upstream.backoff_s,
                                  probe=self.probe)
                     if upstream.addresses else None)

    # -- lifecycle and state

    @property
    def timeouts(self) -> Timeouts:
        return self.upstream.timeouts

    def http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = http_client(self.upstream.timeouts, headers=self._headers)
        return self._client

    def not_configured(self) -> str | None:
        if self.pool is None:
            return f"{self.url_setting} is not set: list the upstream URL(s), comma-separated"
        return None

    def require_pool(self) -> UpstreamPool:
        if self.pool is None:
            raise BackendUnavailable(str(self.not_configured()), backend=self.name)
        return self.pool

    async def probe(self, address: str) -> str | None:
        """None when `address` answers its probe path; else why it is not usable."""
        url = address + self.probe_path
        try:
            resp = await self.http().get(url, timeout=PROBE_TIMEOUT_S)
        except httpx.HTTPError as e:
            return str(transport_error(e, url, self.name))
        if resp.status_code in (401, 403):
            return str(status_error(resp.status_code, resp.content[:200], url, self.name))
        if resp.status_code >= 500:
            return f"{url} answered HTTP {resp.status_code}"
        return None

    async def health(self) -> Health:
        loader = f"HTTP, {self.url_setting}"
        if self.pool is None:
            return Health(False, self.name, loader, reason=self.not_configured())
        addresses = self.pool.addresses
        reasons = await asyncio.gather(*(self.probe(a) for a in addresses))
        down = [f"{a}: {r}" for a, r in zip(addresses, reasons, strict=True) if r is not None]
        ready = len(down) < len(addresses)
        return Health(ready, self.name, f"{loader} ({len(addresses) - len(down)}/"
                      f"{len(addresses)} up)", reason="; ".join(down) or None)

    def upstreams(self) -> list[dict[str, Any]]:
        return self.pool.snapshot() if self.pool is not None else []

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        if self.pool is not None:
            await self.pool.aclose()

    # -- requests

    def pooled(self, open_stream: Callable[[Upstream], AsyncIterator[AudioChunk]]
               ) -> AsyncGenerator[AudioChunk, None]:
        """`open_stream(upstream)` on the best upstream (see adapters/upstream.py)."""
        return cast(AsyncGenerator[AudioChunk, None],
                    stream_from_pool(self.require_pool(), open_stream))

    @asynccontextmanager
    async def request(self, method: str, url: str, **kwargs: Any
                      ) -> AsyncIterator[httpx.Response]:
        """A streamed response with a 2xx status. Every failure, before or while the body is
        read inside the block, is raised typed; leaving the block closes the response, and
        with it the connection when the body was not read to its end."""
        try:
            async with self.http().stream(method, url, **kwargs) as resp:
                if resp.status_code >= 400:
                    detail = await _read_some(resp, ERROR_BODY_BYTES)
                    raise status_error(resp.status_code, detail, url, self.name)
                yield resp
        except httpx.HTTPError as e:
            raise transport_error(e, url, self.name) from e

    async def get_json(self, url: str, *, timeout_s: float | None = None) -> Any:
        """A small JSON answer; typed errors as `request`; a non-JSON body is EngineError."""
        timeout = timeout_s if timeout_s is not None else self.upstream.timeouts.read_s
        async with self.request("GET", url, timeout=timeout) as resp:
            body = await resp.aread()
        try:
            return json.loads(body)
        except ValueError as e:
            raise EngineError(f"{url} did not answer JSON: {body[:120]!r}",
                              backend=self.name) from e

    async def first_answer(self, ask: Callable[[str], Awaitable[Any]]) -> Any:
        """`ask(address)` on each upstream in turn until one answers; the last error if none."""
        error: TTSError | None = None
        for address in self.require_pool().addresses:
            try:
                return await ask(address)
            except TTSError as e:  # refused, timed out, an error status, not JSON: next one
                error = e
        assert error is not None
        raise error

    async def audio_chunks(self, resp: httpx.Response, decoder: StreamDecoder,
                           url: str) -> AsyncIterator[AudioChunk]:
        """The body's audio as it arrives, then an `is_final` chunk with the decoder's rest.
        Bytes that are not the promised audio raise MalformedAudio; none at all NoAudioError."""
        produced = False
        try:
            async for data in resp.aiter_bytes():
                pcm = decoder.feed(data)
                if pcm and decoder.sample_rate_hz:
                    produced = True
                    yield AudioChunk(pcm, decoder.sample_rate_hz)
            tail = decoder.flush()
        except DecodeError as e:
            raise MalformedAudio(f"{url} sent bytes that are not audio: {e}",
                                 backend=self.name) from e
        if not produced and not tail:
            raise NoAudioError(f"{url} answered without audio", backend=self.name)
        yield AudioChunk(tail, decoder.sample_rate_hz or 24_000, is_final=True)


async def _read_some(resp: httpx.Response, limit: int) -> bytes:
    out = b""
    async for data in resp.aiter_bytes():
        out += data
        if len(out) >= limit:
            break
    return out[:limit]


__all__ = ["HttpUpstreamAdapter", "UpstreamConfig"]
