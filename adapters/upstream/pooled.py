"""The upstreams of one network backend, whatever its transport (HTTP, Wyoming TCP, llama.cpp
completions): the pool that routes its streams, each upstream's probe, health, the `/adapters`
listing and closing. An engine holds one and supplies what only it knows: how to probe an
address, and how to speak over one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from adapters.base import Health
from adapters.errors import BackendUnavailable, TTSError
from adapters.upstream.pool import (
    Probe,
    Timeouts,
    Upstream,
    UpstreamPool,
    parse_addresses,
    stream_from_pool,
)

T = TypeVar("T")

PROBE_TIMEOUT_S = 2.0  # a probe answers within /adapters' 5 s, or says why not


@dataclass(frozen=True)
class UpstreamConfig:
    """The upstreams a backend's URL setting lists, with the shared UPSTREAM_* settings."""

    addresses: tuple[str, ...]
    timeouts: Timeouts
    backoff_s: float  # a failed upstream rests this long (doubling) before a probe

    @classmethod
    def from_options(cls, options: Mapping[str, Any], url_key: str) -> UpstreamConfig:
        """From the flat settings mapping; `url_key` is the backend's URL setting."""
        return cls(
            addresses=tuple(parse_addresses(options[url_key])),
            timeouts=Timeouts(connect_s=float(options["upstream_connect_timeout_s"]),
                              read_s=float(options["upstream_read_timeout_s"])),
            backoff_s=float(options["upstream_backoff_s"]),
        )


class PooledUpstreams:
    """The addresses of a backend's URL setting as a pool; `missing` says which setting to
    set when it lists none (the backend is then "not configured" and contacts nobody)."""

    def __init__(self, backend: str, addresses: Sequence[str], *, probe: Probe,
                 backoff_s: float, missing: str) -> None:
        self.backend = backend
        self._probe = probe
        self._missing = missing
        self.pool = (UpstreamPool(backend, addresses, backoff_s=backoff_s, probe=probe)
                     if addresses else None)

    @property
    def addresses(self) -> list[str]:
        return self.pool.addresses if self.pool is not None else []

    def not_configured(self) -> str | None:
        return self._missing if self.pool is None else None

    def require(self) -> UpstreamPool:
        """The pool; BackendUnavailable naming the missing setting when there is none."""
        if self.pool is None:
            raise BackendUnavailable(self._missing, backend=self.backend)
        return self.pool

    def stream(self, open_stream: Callable[[Upstream], AsyncIterator[T]], *,
               prefer: str | None = None) -> AsyncGenerator[T, None]:
        """`open_stream(upstream)` on the best upstream, moving on before its first item
        (adapters/upstream/pool.py `stream_from_pool`); closing it closes the request."""
        return cast(AsyncGenerator[T, None],
                    stream_from_pool(self.require(), open_stream, prefer=prefer))

    async def first_answer(self, ask: Callable[[str], Awaitable[T]]) -> T:
        """`ask(address)` on each upstream in turn until one answers; the last error if none."""
        error: TTSError | None = None
        for address in self.require().addresses:
            try:
                return await ask(address)
            except TTSError as e:  # refused, timed out, an error answer: the next one
                error = e
        assert error is not None
        raise error

    async def health(self, loader: str) -> Health:
        """Every upstream probed now: ready when one is up; the reasons of those down."""
        if self.pool is None:
            return Health(False, self.backend, loader, reason=self._missing)
        addresses = self.pool.addresses
        reasons = await asyncio.gather(*(self._probe(a) for a in addresses))
        down = [f"{a}: {r}" for a, r in zip(addresses, reasons, strict=True) if r is not None]
        return Health(len(down) < len(addresses), self.backend,
                      f"{loader} ({len(addresses) - len(down)}/{len(addresses)} up)",
                      reason="; ".join(down) or None)

    def snapshot(self) -> list[dict[str, Any]]:
        """Each upstream's state, for `/adapters`."""
        return self.pool.snapshot() if self.pool is not None else []

    async def aclose(self) -> None:
        """Stop the probes in flight; the engine closes its own connections."""
        if self.pool is not None:
            await self.pool.aclose()


__all__ = ["PROBE_TIMEOUT_S", "PooledUpstreams", "UpstreamConfig"]
