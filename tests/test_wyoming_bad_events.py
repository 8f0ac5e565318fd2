"""Bad Wyoming events never crash the server: a well-framed event with wrong types gets an
`error` event and the connection stays; bytes that are not an event (or too large to be one)
close only that connection; unknown event types are dropped, as the protocol asks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.tts import Synthesize

from server.app_keys import ORCHESTRATOR
from server.faces.wyoming.face import WYOMING
from tests.wyoming_client import serve_wyoming, wait_until


async def raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def next_event(reader: asyncio.StreamReader, timeout_s: float = 10) -> Event | None:
    return await asyncio.wait_for(async_read_event(reader), timeout_s)


async def still_serves(port: int) -> None:
    """A fresh connection still gets speech."""
    reader, writer = await raw(port)
    try:
        await async_write_event(Synthesize(text="Still alive.").event(), writer)
        while (ev := await next_event(reader)) is not None and ev.type != "audio-stop":
            assert ev.type in ("audio-start", "audio-chunk"), ev
        assert ev is not None
    finally:
        writer.close()


def header(**fields: Any) -> bytes:
    return json.dumps(fields).encode() + b"\n"


CLOSING = {  # raw bytes -> the connection is answered with invalid_event and closed
    "not json": b"hello there\n",
    "json array": b"[1, 2, 3]\n",
    "no type": header(data={"text": "hi"}),
    "type not a string": header(type=5),
    "data not an object": header(type="synthesize", data=[1]),
    "data_length a string": header(type="synthesize", data_length="12"),
    "negative payload": header(type="synthesize", payload_length=-1),
    "huge data_length": header(type="synthesize", data_length=10**12),
    "huge payload_length": header(type="audio-chunk", payload_length=2**40),
    "deep nesting": b"[" * 100_000 + b"\n",  # longer than a header may be
    "nested in limits": b'{"type": "x", "data": ' + b"[" * 20_000 + b"]" * 20_000 + b"}\n",
    "data segment not an object": header(type="synthesize", data_length=3) + b"[1]",
    "data segment not json": header(type="synthesize", data_length=3) + b"abc",
    "bad utf-8": b'{"type": "\xff\xfe"}\n',
    "header without newline": b"{" + b" " * 200_000,
}


async def test_malformed_bytes_close_only_that_connection(serve) -> None:
    srv, port = await serve_wyoming(serve, tts_backend="synthetic")
    bystander_r, bystander_w = await raw(port)  # another client, connected throughout
    try:
        for name, data in CLOSING.items():
            reader, writer = await raw(port)
            try:
                writer.write(data)
                await writer.drain()
                ev = await next_event(reader)
                assert ev is not None and ev.type == "error", name
                assert ev.data["code"] == "invalid_event", (name, ev.data)
                assert await next_event(reader) is None, name  # closed by the server
            except ConnectionResetError:
                pass  # the server closed while we were still sending: also fine
            finally:
                writer.close()
        await async_write_event(Event(type="describe"), bystander_w)
        ev = await next_event(bystander_r)
        assert ev is not None and ev.type == "info"
        await still_serves(port)
    finally:
        bystander_w.close()
    assert srv.app[ORCHESTRATOR].snapshot()["active_streams"] == 0


async def test_unknown_types_are_dropped_and_wrong_types_answered(serve) -> None:
    _, port = await serve_wyoming(serve, tts_backend="synthetic")
    reader, writer = await raw(port)
    try:
        for ev in (Event(type="select-program", data={"name": "piper"}),
                   Event(type="transcribe", data={"language": "en"}),
                   Event(type="audio-chunk", data={"rate": 16000}, payload=b"\0" * 6400),
                   Event(type="no-such-thing", data={"x": [1, {"y": None}]})):
            await async_write_event(ev, writer)
        await async_write_event(Event(type="ping", data={"text": "p"}), writer)
        pong = await next_event(reader)  # nothing was answered before it
        assert pong is not None and pong.type == "pong" and pong.data["text"] == "p"
        for data in ({}, {"text": None}, {"text": ["a"]}, {"text": "hi", "voice": "joe"},
                     {"text": "hi", "voice": {"name": 3}}, {"text": "hi", "text_format": {}},
                     {"text": "hi", "voice": {"name": "sine", "speaker": ["a"]}}):
            await async_write_event(Event(type="synthesize", data=data), writer)
            ev = await next_event(reader)
            assert ev is not None and ev.type == "error", data
            assert ev.data["code"] in ("invalid_field", "unsupported"), ev.data
        for kind in ("synthesize-chunk", "synthesize-stop"):
            await async_write_event(Event(type=kind, data={"text": "x"}), writer)
            ev = await next_event(reader)
            assert ev is not None and ev.data["code"] == "out_of_sequence"
        await async_write_event(Event(type="synthesize-start"), writer)
        await async_write_event(Event(type="synthesize-start"), writer)  # twice
        ev = await next_event(reader)
        assert ev is not None and ev.data["code"] == "out_of_sequence"
        await async_write_event(Event(type="synthesize-chunk", data={"text": 7}), writer)
        ev = await next_event(reader)
        assert ev is not None and ev.data["code"] == "invalid_field"
        await async_write_event(Event(type="synthesize-chunk", data={"text": "Fine now. "}),
                                writer)
        await async_write_event(Event(type="synthesize-stop"), writer)
        types = []
        while (ev := await next_event(reader)) is not None:
            types.append(ev.type)
            if ev.type == "synthesize-stopped":
                break
        assert types[0] == "audio-start" and types[-2:] == ["audio-stop", "synthesize-stopped"]
    finally:
        writer.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
TYPES = ["synthesize", "synthesize-start", "synthesize-chunk", "synthesize-stop", "describe",
         "ping", "audio-chunk", "select-program", "zzz"]


async def test_random_events_never_crash_the_server(serve) -> None:
    srv, port = await serve_wyoming(serve, tts_backend="synthetic")
    loop = asyncio.get_running_loop()
    seen: list[str] = []

    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.tuples(st.sampled_from(TYPES),
                              st.dictionaries(st.sampled_from(["text", "voice", "text_format",
                                                               "name", "speaker", "language"]),
                                              json_values, max_size=3)),
                    min_size=1, max_size=5))
    def run(events: list[tuple[str, dict[str, Any]]]) -> None:
        async def one() -> None:
            reader, writer = await raw(port)
            try:
                for kind, data in events:
                    await async_write_event(Event(type=kind, data=data), writer)
                await async_write_event(Event(type="ping", data={"text": "end"}), writer)
                while (ev := await next_event(reader, 30)) is not None:
                    seen.append(ev.type)
                    if ev.type == "pong" and ev.data.get("text") == "end":
                        break
                assert ev is not None, "the server closed a connection of valid events"
            finally:
                writer.close()

        asyncio.run_coroutine_threadsafe(one(), loop).result(60)

    await asyncio.to_thread(run)
    assert "error" in seen and "info" in seen
    await still_serves(port)
    await wait_until(lambda: not srv.app[WYOMING].connections)
    await wait_until(lambda: srv.app[ORCHESTRATOR].snapshot()["active_streams"] == 0)
