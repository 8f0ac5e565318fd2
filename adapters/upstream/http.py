"""The base of adapters that speak HTTP to a pool of upstreams (openai_tts, xtts, coqui,
elevenlabs).

It owns what those adapters share beyond the pooled upstreams (adapters/upstream/pooled.py):
the lazily built keep-alive client, each upstream's probe (a cheap GET), streamed requests
whose every failure is a typed error, audio bodies decoded into AudioChunks as bytes arrive,
and the one `synth_stream` body: nothing to speak is a bad request, then `prepare(req)`, then
`speak(upstream, req)` on the best upstream, moving on to the next one before the first audio.
A subclass names its URL setting and probe path and implements `speak`; nothing here knows an
engine.
"""

from __future__ import annotations

import asyncio
import json
from abc import abstractmethod
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any, ClassVar

import httpx

from adapters.base import PIPELINE_RATE_HZ, AudioChunk, Health, TTSAdapter, TTSInput
from adapters.errors import BadRequest, EngineError, MalformedAudio, NoAudioError
from adapters.upstream.http_client import http_client, status_error, transport_error
from adapters.upstream.pool import Upstream
from adapters.upstream.pooled import PROBE_TIMEOUT_S, PooledUpstreams, UpstreamConfig
from dsp.decoders import DecodeError, StreamDecoder

ERROR_BODY_BYTES = 2000  # how much of an error answer is read to explain it
LIST_TIMEOUT_S = 3.0  # a voice or language list: small, or the route is missing
IDLE_CLOSE_S = 30.0  # no request for this long: the keep-alive connections are closed


class HttpUpstreamAdapter(TTSAdapter):
    """An engine behind HTTP upstreams; subclasses implement `speak` (see the module doc)."""

    url_setting: ClassVar[str] = "URL"  # the setting that lists the upstreams, for messages
    probe_path: ClassVar[str] = "/"  # a cheap GET; any answer below 500 means "up"

    def __init__(self, upstream: UpstreamConfig, *, headers: dict[str, str] | None = None) -> None:
        self.timeouts = upstream.timeouts
        self._headers = headers
        self._client: httpx.AsyncClient | None = None
        self._in_flight = 0
        self._idle_close: asyncio.TimerHandle | None = None
        self.pooled = PooledUpstreams(self.name, upstream.addresses, probe=self.probe,
                                      backoff_s=upstream.backoff_s,
                                      missing=self.missing_setting())

    def missing_setting(self) -> str:
        """What to set when no upstream is listed (the backend then contacts nobody)."""
        return f"{self.url_setting} is not set: list the upstream URL(s), comma-separated"

    # -- lifecycle and state

    def http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = http_client(self.timeouts, headers=self._headers)
        return self._client

    def _busy(self) -> None:
        self._in_flight += 1
        if self._idle_close is not None:
            self._idle_close.cancel()
            self._idle_close = None

    def _done(self) -> None:
        """The last request ended: after IDLE_CLOSE_S with none, the client and its
        keep-alive connections go. (An upstream closes idle connections on its own; the
        client only notices on its next request, so after a burst they would sit in
        CLOSE_WAIT for as long as the server stays idle.)"""
        self._in_flight -= 1
        if self._in_flight == 0 and self._client is not None:
            loop = asyncio.get_running_loop()
            self._idle_close = loop.call_later(IDLE_CLOSE_S, self._close_idle)

    def _close_idle(self) -> None:
        self._idle_close = None
        client, self._client = self._client, None
        if client is not None and self._in_flight == 0:
            asyncio.ensure_future(client.aclose())
        elif client is not None:
            self._client = client

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
        return await self.pooled.health(f"HTTP, {self.url_setting}")

    def upstreams(self) -> list[dict[str, Any]]:
        return self.pooled.snapshot()

    async def aclose(self) -> None:
        if self._idle_close is not None:
            self._idle_close.cancel()
            self._idle_close = None
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        await self.pooled.aclose()

    # -- streaming

    async def synth_stream(self, req: TTSInput) -> AsyncIterator[AudioChunk]:
        if not req.text.strip():
            raise BadRequest("nothing to speak", field="input")
        req = self.prepare(req)
        async with aclosing(self.pooled.stream(lambda up: self.speak(up, req))) as chunks:
            async for chunk in chunks:
                yield chunk

    def prepare(self, req: TTSInput) -> TTSInput:
        """The request as every upstream gets it, checked before any is asked (e.g. the
        voice filled in, or a typed error when there is none); as it is by default."""
        return req

    @abstractmethod
    def speak(self, upstream: Upstream, req: TTSInput) -> AsyncIterator[AudioChunk]:
        """`req` spoken by `upstream`: one request, its audio as it arrives, the last chunk
        `is_final`; failures typed (an upstream fault before the first chunk moves the
        request to another upstream). Closing the iterator closes the request."""

    # -- requests

    @asynccontextmanager
    async def request(self, method: str, url: str, **kwargs: Any
                      ) -> AsyncIterator[httpx.Response]:
        """A streamed response with a 2xx status. Every failure, before or while the body is
        read inside the block, is raised typed; leaving the block closes the response, and
        with it the connection when the body was not read to its end."""
        self._busy()
        try:
            async with self.http().stream(method, url, **kwargs) as resp:
                if resp.status_code >= 400:
                    detail = await _read_some(resp, ERROR_BODY_BYTES)
                    raise status_error(resp.status_code, detail, url, self.name)
                yield resp
        except httpx.HTTPError as e:
            raise transport_error(e, url, self.name) from e
        finally:
            self._done()

    async def get_json(self, url: str, *, timeout_s: float | None = None) -> Any:
        """A small JSON answer; typed errors as `request`; a non-JSON body is EngineError."""
        timeout = timeout_s if timeout_s is not None else self.timeouts.read_s
        async with self.request("GET", url, timeout=timeout) as resp:
            body = await resp.aread()
        try:
            return json.loads(body)
        except ValueError as e:
            raise EngineError(f"{url} did not answer JSON: {body[:120]!r}",
                              backend=self.name) from e

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
        yield AudioChunk(tail, decoder.sample_rate_hz or PIPELINE_RATE_HZ, is_final=True)


async def _read_some(resp: httpx.Response, limit: int) -> bytes:
    out = b""
    async for data in resp.aiter_bytes():
        out += data
        if len(out) >= limit:
            break
    return out[:limit]


__all__ = ["LIST_TIMEOUT_S", "HttpUpstreamAdapter"]
