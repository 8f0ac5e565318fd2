"""Test helpers around the real `wyoming` client: connect to the face, read a reply."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.event import Event

from server.faces.wyoming.face import WYOMING
from tests.ports import listening_ports, new_listening_port


async def serve_wyoming(serve: Any, **settings: Any) -> tuple[Any, int]:
    """A Morpheus server with the Wyoming face on a loopback port of the OS's choosing."""
    before = listening_ports(os.getpid())
    srv = await serve(wyoming_uri="tcp://127.0.0.1:0", **settings)
    assert srv.app[WYOMING].uri is not None
    return srv, new_listening_port(before, exclude={srv.port})


async def wait_until(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def client(port: int) -> AsyncTcpClient:
    return AsyncTcpClient("127.0.0.1", port)


@dataclass
class Heard:
    """Everything one reply sent, with arrival times (time.monotonic)."""

    events: list[Event] = field(default_factory=list)
    pcm: bytearray = field(default_factory=bytearray)
    start: AudioStart | None = None
    first_audio_at: float | None = None
    last_audio_at: float | None = None

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / 24000

    def errors(self) -> list[dict[str, Any]]:
        return [e.data for e in self.events if e.type == "error"]


async def read_reply(c: AsyncTcpClient, *, until: tuple[str, ...] = ("audio-stop", "error"),
                     timeout_s: float = 60.0, heard: Heard | None = None) -> Heard:
    """Read events until one of `until` (inclusive); fails on EOF or timeout."""
    heard = heard or Heard()
    deadline = time.monotonic() + timeout_s
    while True:
        ev = await asyncio.wait_for(c.read_event(), max(0.01, deadline - time.monotonic()))
        assert ev is not None, f"connection closed after {heard.types}"
        now = time.monotonic()
        heard.events.append(ev)
        if AudioStart.is_type(ev.type):
            heard.start = AudioStart.from_event(ev)
        elif AudioChunk.is_type(ev.type):
            chunk = AudioChunk.from_event(ev)
            assert heard.start is not None, "audio-chunk before audio-start"
            assert (chunk.rate, chunk.width, chunk.channels) == (24000, 2, 1)
            heard.pcm += chunk.audio
            heard.first_audio_at = heard.first_audio_at or now
            heard.last_audio_at = now
        if ev.type in until:
            return heard
