"""A pool of upstreams per network backend (its URL setting may list several, comma-separated),
whatever the transport: routing, backoff, probes, and which failures are the upstream's.

Routing is least outstanding streams first. An upstream that refuses connections, times out
or answers 5xx is taken out for a backoff period (doubling per failure up to a cap); when the
period ends it is probed (the adapter's cheap health request) before it takes streams again,
or, for an adapter without a probe, it gets one trial stream.

`stream_from_pool(pool, open_stream)` runs one request across the pool: an upstream that fails
before its first item is marked down and the next one is tried, invisibly; one that fails
after items went out raises `UpstreamLost` when another upstream can take over, so the
orchestrator speaks the rest there (same backend, not a failover).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from adapters.errors import (
    BackendTimeout,
    BackendUnavailable,
    EngineError,
    TTSError,
    UpstreamLost,
    UpstreamRejected,
)

log = logging.getLogger("morpheus.upstream")

T = TypeVar("T")
Probe = Callable[[str], Awaitable[str | None]]  # address -> None when healthy, else the reason

MAX_BACKOFF_S = 60.0  # the longest an upstream rests, however often it failed


def parse_addresses(value: str | Sequence[str] | None) -> list[str]:
    """"a, b,,c" (or a list) -> ["a", "b", "c"]; order kept, duplicates dropped."""
    items = value.split(",") if isinstance(value, str) else list(value or ())
    out: list[str] = []
    for item in items:
        item = item.strip().rstrip("/")
        if item and item not in out:
            out.append(item)
    return out


@dataclass(frozen=True)
class Timeouts:
    """Seconds to connect to an upstream, and to wait for its next bytes once connected
    (UPSTREAM_CONNECT_TIMEOUT_S, UPSTREAM_READ_TIMEOUT_S)."""

    connect_s: float
    read_s: float


def is_upstream_fault(e: TTSError) -> bool:
    """Whether the error says the upstream is unwell (take it out), not that our request was
    wrong (4xx) or the text unspeakable."""
    if isinstance(e, UpstreamRejected):
        return False
    return isinstance(e, (BackendUnavailable, BackendTimeout, EngineError))


# ------------------------------------------------------------------------------ the pool


@dataclass
class Upstream:
    """One address of a pool and what the pool knows about it."""

    address: str
    state: Literal["up", "down", "probing"] = "up"
    outstanding: int = 0  # streams using it now
    streams: int = 0  # streams it has served
    failures: int = 0  # consecutive failures (sets the backoff)
    down_until: float = 0.0
    last_error: str | None = None

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "address": self.address, "state": self.state, "outstanding": self.outstanding,
            "streams": self.streams, "failures": self.failures, "last_error": self.last_error,
            "retry_in_s": round(max(0.0, self.down_until - now), 1) if self.state != "up" else 0,
        }


class UpstreamPool:
    """Upstream addresses of one backend, least outstanding first, with backoff and probes."""

    def __init__(
        self,
        backend: str,
        addresses: Sequence[str],
        *,
        backoff_s: float,
        max_backoff_s: float = MAX_BACKOFF_S,
        probe: Probe | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not addresses:
            raise ValueError(f"{backend}: no upstream address configured")
        self.backend = backend
        self.upstreams = [Upstream(a) for a in addresses]
        self.backoff_s = backoff_s
        self.max_backoff_s = max(max_backoff_s, backoff_s)
        self._probe = probe
        self._clock = clock
        self._probes: set[asyncio.Task[None]] = set()
        self._turn = 0  # breaks ties between equally loaded upstreams in turn

    @property
    def addresses(self) -> list[str]:
        return [u.address for u in self.upstreams]

    def _refresh(self) -> None:
        """Upstreams whose backoff ended: probe them (or, with no probe, offer one trial)."""
        now = self._clock()
        for up in self.upstreams:
            if up.state != "down" or now < up.down_until:
                continue
            if self._probe is None:
                up.state = "up"  # one trial: a failure sends it back down, for longer
                continue
            up.state = "probing"
            task = asyncio.ensure_future(self._run_probe(up))
            self._probes.add(task)
            task.add_done_callback(self._probes.discard)

    async def _run_probe(self, up: Upstream) -> None:
        assert self._probe is not None
        try:
            reason = await self._probe(up.address)
        except Exception as e:  # a probe that crashes says the upstream is not fine
            reason = f"probe failed: {e!r}"
        if reason is None:
            log.info("%s upstream %s is back", self.backend, up.address)
            up.state, up.failures, up.last_error = "up", 0, None
        else:
            self._down(up, reason)

    def _down(self, up: Upstream, reason: str) -> None:
        up.failures += 1
        up.last_error = reason
        up.state = "down"
        backoff = min(self.max_backoff_s, self.backoff_s * 2 ** (up.failures - 1))
        up.down_until = self._clock() + backoff

    def pick(self, exclude: Sequence[str] = (), prefer: str | None = None) -> Upstream:
        """The up upstream with the fewest streams in flight; BackendUnavailable if none.
        `prefer` wins while it is up (a session keeps its upstream and its connection)."""
        self._refresh()
        ready = [u for u in self.upstreams if u.state == "up" and u.address not in exclude]
        if not ready:
            raise BackendUnavailable(self._none_reason(exclude), backend=self.backend)
        for u in ready:
            if u.address == prefer:
                return u
        n = len(self.upstreams)
        self._turn += 1
        return min(ready, key=lambda u: (u.outstanding,
                                         (self.upstreams.index(u) - self._turn) % n))

    def _none_reason(self, exclude: Sequence[str]) -> str:
        errors = "; ".join(f"{u.address}: {u.last_error or u.state}" for u in self.upstreams
                           if u.address not in exclude)
        tried = f" (tried {', '.join(exclude)})" if exclude else ""
        return f"no {self.backend} upstream available{tried}" + (f": {errors}" if errors else "")

    def has_other(self, address: str) -> bool:
        """Whether an upstream other than `address` could take a stream now."""
        self._refresh()
        return any(u.state == "up" and u.address != address for u in self.upstreams)

    def failed(self, up: Upstream, error: BaseException) -> None:
        log.warning("%s upstream %s failed: %s", self.backend, up.address, error)
        self._down(up, str(error)[:300])

    def succeeded(self, up: Upstream) -> None:
        up.failures = 0
        up.last_error = None

    def unavailable_reason(self) -> str | None:
        """None when at least one upstream is up (or about to be probed back)."""
        self._refresh()
        if any(u.state == "up" for u in self.upstreams):
            return None
        return self._none_reason(())

    def snapshot(self) -> list[dict[str, Any]]:
        now = self._clock()
        return [u.snapshot(now) for u in self.upstreams]

    async def aclose(self) -> None:
        for task in list(self._probes):
            task.cancel()
        if self._probes:
            await asyncio.gather(*self._probes, return_exceptions=True)


async def stream_from_pool(
    pool: UpstreamPool, open_stream: Callable[[Upstream], AsyncIterator[T]],
    *, prefer: str | None = None,
) -> AsyncIterator[T]:
    """Items of `open_stream(upstream)` from the best upstream, moving on before the first item.

    Before anything was yielded, an upstream fault (refused, timed out, 5xx, dropped) marks
    that upstream down and the next one is tried. After items went out, the fault is raised as
    `UpstreamLost` when another upstream is up (the orchestrator resumes there from the first
    unheard word), else as itself. 4xx answers (our request is wrong) are raised at once.
    Closing this iterator closes the upstream request. `prefer` is tried first while it is up.
    """
    tried: list[str] = []
    while True:
        up = pool.pick(exclude=tried, prefer=prefer)
        tried.append(up.address)
        up.outstanding += 1
        up.streams += 1
        produced = False
        try:
            async with aclosing(open_stream(up)) as items:  # type: ignore[type-var]
                async for item in items:
                    produced = True
                    yield item
            pool.succeeded(up)
            return
        except TTSError as e:
            if not is_upstream_fault(e):
                raise
            pool.failed(up, e)
            if produced:
                if pool.has_other(up.address):
                    raise UpstreamLost(f"{up.address} failed mid-stream: {e}",
                                       backend=pool.backend) from e
                raise
            if not pool.has_other(up.address) or all(
                    u.address in tried for u in pool.upstreams if u.state == "up"):
                raise
            log.info("%s: %s failed before audio; trying another upstream", pool.backend,
                     up.address)
        finally:
            up.outstanding -= 1


__all__ = [
    "Probe",
    "Timeouts",
    "Upstream",
    "UpstreamPool",
    "is_upstream_fault",
    "parse_addresses",
    "stream_from_pool",
]
