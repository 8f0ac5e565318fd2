"""The upstream pool every network adapter shares: routing, backoff, probes, retry rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.errors import (
    BackendUnavailable,
    BadCredentials,
    EngineError,
    UpstreamLost,
    UpstreamRejected,
)
from adapters.upstream.http_client import status_error
from adapters.upstream.pool import Upstream, UpstreamPool, parse_addresses, stream_from_pool
from adapters.upstream.pooled import PooledUpstreams

BACKOFF_S = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_parse_addresses_keeps_order_and_drops_blanks_and_duplicates() -> None:
    assert parse_addresses(" http://a/ ,http://b,,http://a ") == ["http://a", "http://b"]
    assert parse_addresses("") == []
    assert parse_addresses(["x", " y "]) == ["x", "y"]


def test_status_errors_are_typed() -> None:
    assert isinstance(status_error(401, b"no", "u", "b"), BadCredentials)
    assert isinstance(status_error(403, b"no", "u", "b"), BadCredentials)
    assert "API key" in str(status_error(401, b"", "u", "b"))
    assert isinstance(status_error(422, b"bad", "u", "b"), UpstreamRejected)
    assert not status_error(422, b"bad", "u", "b").retryable
    assert isinstance(status_error(503, b"", "u", "b"), BackendUnavailable)
    err = status_error(500, b"boom", "u", "b")
    assert type(err) is EngineError and "boom" in str(err)


async def test_least_outstanding_first_and_ties_rotate() -> None:
    pool = UpstreamPool("x", ["a", "b", "c"], backoff_s=BACKOFF_S)
    picks = [pool.pick().address for _ in range(6)]
    assert sorted(set(picks)) == ["a", "b", "c"]  # equal load: every upstream gets turns
    pool.upstreams[0].outstanding = 2
    pool.upstreams[1].outstanding = 1
    pool.upstreams[2].outstanding = 1
    assert pool.pick().address in ("b", "c")
    pool.upstreams[2].outstanding = 0
    assert pool.pick().address == "c"


async def test_failed_upstream_rests_with_doubling_backoff_then_gets_a_trial() -> None:
    clock = Clock()
    pool = UpstreamPool("x", ["a", "b"], backoff_s=5, clock=clock)
    a = pool.upstreams[0]
    pool.failed(a, RuntimeError("refused"))
    assert [pool.pick().address for _ in range(4)] == ["b"] * 4
    assert pool.snapshot()[0]["state"] == "down" and pool.snapshot()[0]["last_error"] == "refused"
    clock.now += 5.1
    assert a in [pool.pick() for _ in range(4)]  # no probe: one trial after the rest
    pool.failed(a, RuntimeError("refused again"))
    clock.now += 5.1
    assert all(pool.pick() is not a for _ in range(4))  # second failure: 10 s
    clock.now += 5.0
    assert a in [pool.pick() for _ in range(4)]


async def test_probe_decides_when_a_rested_upstream_returns() -> None:
    clock = Clock()
    healthy = asyncio.Event()

    async def probe(address: str) -> str | None:
        return None if healthy.is_set() else "still down"

    pool = UpstreamPool("x", ["a", "b"], backoff_s=1, clock=clock, probe=probe)
    a = pool.upstreams[0]
    pool.failed(a, RuntimeError("refused"))
    clock.now += 1.1
    assert pool.pick().address == "b"  # the probe runs in the background meanwhile
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert a.state == "down" and a.last_error == "still down"
    healthy.set()
    clock.now += 10
    pool.pick()
    for _ in range(3):
        await asyncio.sleep(0)
    assert a.state == "up" and a.failures == 0
    await pool.aclose()


async def test_all_down_is_unavailable_with_every_reason() -> None:
    pool = UpstreamPool("openai_tts", ["a", "b"], backoff_s=BACKOFF_S)
    for up in pool.upstreams:
        pool.failed(up, RuntimeError(f"{up.address} refused"))
    with pytest.raises(BackendUnavailable) as info:
        pool.pick()
    assert "a refused" in str(info.value) and "b refused" in str(info.value)
    assert pool.unavailable_reason() is not None


def scripted(plan: dict[str, list[object]]):  # noqa: ANN201
    """open_stream that yields each address's items; an exception item is raised there."""
    opened: list[str] = []

    async def open_stream(up: Upstream) -> AsyncIterator[object]:
        opened.append(up.address)
        for item in plan[up.address]:
            if isinstance(item, BaseException):
                raise item
            yield item

    return open_stream, opened


async def collect(pool: UpstreamPool, open_stream) -> list[object]:  # noqa: ANN001
    return [x async for x in stream_from_pool(pool, open_stream)]


async def test_failure_before_first_item_moves_on_invisibly() -> None:
    pool = UpstreamPool("x", ["a", "b"], backoff_s=BACKOFF_S)
    pool.upstreams[1].outstanding = 1  # so "a" is picked first
    open_stream, opened = scripted({"a": [BackendUnavailable("refused")], "b": [1, 2]})
    assert await collect(pool, open_stream) == [1, 2]
    assert opened == ["a", "b"]
    assert pool.upstreams[0].state == "down"
    assert pool.upstreams[1].outstanding == 1  # leases are returned


async def test_failure_after_items_is_upstream_lost_when_another_is_up() -> None:
    pool = UpstreamPool("x", ["a", "b"], backoff_s=BACKOFF_S)
    pool.upstreams[1].outstanding = 1
    open_stream, _ = scripted({"a": [1, EngineError("dropped")], "b": [9]})
    got: list[object] = []
    with pytest.raises(UpstreamLost):
        async for x in stream_from_pool(pool, open_stream):
            got.append(x)
    assert got == [1]
    assert pool.upstreams[0].state == "down"


async def test_lone_upstream_failure_is_raised_as_itself() -> None:
    pool = UpstreamPool("x", ["a"], backoff_s=BACKOFF_S)
    open_stream, _ = scripted({"a": [1, EngineError("dropped")]})
    with pytest.raises(EngineError) as info:
        await collect(pool, open_stream)
    assert not isinstance(info.value, UpstreamLost)


async def test_rejected_request_is_not_the_upstreams_fault() -> None:
    pool = UpstreamPool("x", ["a", "b"], backoff_s=BACKOFF_S)
    pool.upstreams[1].outstanding = 1
    open_stream, opened = scripted({"a": [UpstreamRejected("422")], "b": [1]})
    with pytest.raises(UpstreamRejected):
        await collect(pool, open_stream)
    assert opened == ["a"] and pool.upstreams[0].state == "up"


async def test_every_upstream_failing_raises_the_last_error() -> None:
    pool = UpstreamPool("x", ["a", "b"], backoff_s=BACKOFF_S)
    open_stream, opened = scripted({"a": [BackendUnavailable("a down")],
                                    "b": [BackendUnavailable("b down")]})
    with pytest.raises(BackendUnavailable):
        await collect(pool, open_stream)
    assert sorted(opened) == ["a", "b"]


async def test_closing_early_closes_the_upstream_request() -> None:
    closed = asyncio.Event()

    async def open_stream(up: Upstream) -> AsyncIterator[int]:
        try:
            for i in range(100):
                yield i
        finally:
            closed.set()

    pool = UpstreamPool("x", ["a"], backoff_s=BACKOFF_S)
    agen = stream_from_pool(pool, open_stream)
    assert await agen.__anext__() == 0
    await agen.aclose()
    assert closed.is_set() and pool.upstreams[0].outstanding == 0


# ------------------------------------------------------------------------------ the pooled base


async def test_pooled_upstreams_health_is_ready_while_one_answers_and_lists_the_rest() -> None:
    down = {"b": "refused"}

    async def probe(address: str) -> str | None:
        return down.get(address)

    pooled = PooledUpstreams("x", ["a", "b"], probe=probe, backoff_s=BACKOFF_S, missing="X_URL")
    health = await pooled.health("TCP, X_URL")
    assert health.ready and health.loader == "TCP, X_URL (1/2 up)" and health.reason == "b: refused"
    down["a"] = "timed out"
    health = await pooled.health("TCP, X_URL")
    assert not health.ready and health.reason == "a: timed out; b: refused"
    assert [u["address"] for u in pooled.snapshot()] == ["a", "b"]
    assert await pooled.first_answer(lambda address: asyncio.sleep(0, address)) == "a"
    await pooled.aclose()


async def test_pooled_upstreams_without_addresses_name_the_setting_and_contact_nobody() -> None:
    asked: list[str] = []

    async def probe(address: str) -> str | None:
        asked.append(address)
        return None

    pooled = PooledUpstreams("x", [], probe=probe, backoff_s=BACKOFF_S,
                             missing="X_URL is not set")
    health = await pooled.health("HTTP, X_URL")
    assert not health.ready and health.reason == "X_URL is not set"
    assert pooled.not_configured() == "X_URL is not set" and pooled.snapshot() == []
    with pytest.raises(BackendUnavailable, match="X_URL is not set"):
        [x async for x in pooled.stream(lambda up: scripted({})[0](up))]
    assert asked == []
    await pooled.aclose()


async def test_pooled_upstreams_first_answer_tries_each_in_turn() -> None:
    async def probe(address: str) -> str | None:
        return None

    pooled = PooledUpstreams("x", ["a", "b"], probe=probe, backoff_s=BACKOFF_S, missing="")

    async def ask(address: str) -> str:
        if address == "a":
            raise BackendUnavailable("a refused")
        return f"{address} answered"

    assert await pooled.first_answer(ask) == "b answered"

    async def never(address: str) -> str:
        raise BackendUnavailable(f"{address} refused")

    with pytest.raises(BackendUnavailable, match="b refused"):
        await pooled.first_answer(never)


async def test_idle_keep_alive_connections_are_given_back(monkeypatch) -> None:  # noqa: ANN001
    """After a burst, an idle HTTP engine closes its client (and its keep-alive sockets,
    which its upstream closes on its own and which would sit in CLOSE_WAIT): the chaos soak
    found them held as long as the server stayed idle."""
    import adapters.upstream.http as http_mod
    from adapters.openai_tts import OpenAITTSAdapter
    from server.config import Settings
    from tests.openai_server import OpenAITestServer

    monkeypatch.setattr(http_mod, "IDLE_CLOSE_S", 0.2)
    async with OpenAITestServer() as up:
        adapter = OpenAITTSAdapter.from_options(
            Settings(openai_tts_base_url=up.url + "/v1", openai_tts_voice="af_bella").model_dump())
        try:
            from adapters.base import TTSInput
            chunks = [c async for c in adapter.synth_stream(TTSInput(text="Hello there."))]
            assert chunks and adapter._client is not None
            await asyncio.sleep(0.5)
            assert adapter._client is None  # closed while idle
            chunks = [c async for c in adapter.synth_stream(TTSInput(text="Again."))]
            assert chunks  # and built again when needed
        finally:
            await adapter.aclose()
