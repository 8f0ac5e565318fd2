"""An idle server gives back what its last burst took (server/core/idle.py): cyclic garbage
collected and the C heap trimmed once per idle spell, never while a stream runs."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest

from server.core import idle
from server.core.idle import IdleGiveBack


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_gives_back_once_per_idle_spell_after_activity() -> None:
    clock, state = Clock(), {"activity": 0, "busy": False}
    watcher = IdleGiveBack(lambda: state["activity"], lambda: bool(state["busy"]), idle_s=5.0,
                           clock=clock)
    clock.t += 60
    assert not watcher.due(), "nothing happened since start: nothing to give back"
    state["activity"] = 1
    assert not watcher.due()
    clock.t += 4.9
    assert not watcher.due(), "not quiet long enough"
    clock.t += 0.2
    assert watcher.due()
    clock.t += 60
    assert not watcher.due(), "once per idle spell"
    state["activity"], state["busy"] = 2, True
    assert not watcher.due()
    clock.t += 60
    assert not watcher.due(), "a stream still runs"
    state["busy"] = False
    assert not watcher.due(), "the quiet starts when the stream ends"
    clock.t += 5.0
    assert watcher.due()


class Cycle:
    def __init__(self) -> None:
        self.me = self


async def test_an_idle_server_collects_what_a_stream_left_in_cycles(
        serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idle, "IDLE_GIVE_BACK_S", 0.3)
    monkeypatch.setattr(idle, "POLL_S", 0.05)
    srv = await serve(tts_backend="synthetic")
    gc.disable()  # only the server's own collection may free the cycle
    try:
        left = Cycle()
        gc.collect(1), gc.collect(1)  # noqa: B018 (promote it to the oldest generation)
        gone = weakref.ref(left)
        del left
        async with srv.http.post(f"{srv.url}/v1/audio/speech",
                                 json={"input": "Hello there.", "voice": "default",
                                       "response_format": "pcm"}) as r:
            assert r.status == 200, await r.text()
            assert len(await r.read()) > 0
        for _ in range(100):
            if gone() is None:
                break
            await asyncio.sleep(0.05)
        assert gone() is None, "the cycle outlived the idle spell"
    finally:
        gc.enable()


def test_a_scrape_is_no_activity_but_a_socket_coming_or_going_is() -> None:
    from server.deliveries import Deliveries, _HttpRequest

    class Socket:
        transport = "ws"

        def owes(self) -> bool:
            return False

        async def close_for_shutdown(self, reason: str) -> None:
            pass

    deliveries = Deliveries()
    deliveries.add(_HttpRequest())  # /metrics in flight
    assert deliveries.connections() == 0
    sock = Socket()
    deliveries.add(sock)
    assert deliveries.connections() == 1
    deliveries.discard(sock)
    assert deliveries.connections() == 0
