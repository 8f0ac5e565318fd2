"""SNAC_URL as an upstream pool (issue 14): two llama.cpp-protocol servers behind one backend.

Through the HTTP API (the `serve` fixture): streams spread over both upstreams; an upstream
killed mid-stream (its socket closed under the stream) or between streams (its kept-alive
connections dropped too) costs no request: every stream completes on snac_llamacpp, not
degraded, and a stream cut mid-way continues on the other upstream from the first unheard
word. A killed upstream that comes back is probed and takes streams again.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from adapters.orpheus.voices import format_prompt
from tests.audio_check import pcm_stats
from tests.extras import torch_or_skip
from tests.llama_protocol_server import LlamaProtocolServer, orpheus_script
from tests.ports import Reserved
from tests.snac_fixture import write_snac_checkpoint

torch_or_skip()

FAST = 6.0  # tokens at 6x real time: short tests, still streamed token by token


@pytest.fixture(scope="module")
def snac_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_snac_checkpoint(tmp_path_factory.mktemp("snac_pool"))


def script(realtime: float = FAST):  # noqa: ANN201
    return lambda body: orpheus_script(body, realtime=realtime)


async def start_pool(serve: Any, snac_dir: Path, *servers: LlamaProtocolServer) -> Any:
    return await serve(tts_backend="snac_llamacpp", snac_model=str(snac_dir), snac_device="cpu",
                       snac_url=",".join(s.url for s in servers), fallback_backend="espeak",
                       upstream_backoff_s=0.3, snac_threads=1,
                       stall_timeout_ms=60_000)  # a slow shared CI machine is not a stall


async def speak(srv: Any, text: str) -> tuple[dict[str, str], bytes]:
    async with srv.http.post(srv.url + "/v1/audio/speech", json={
            "input": text, "voice": "tara", "response_format": "pcm"}) as r:
        assert r.status == 200, await r.text()
        return dict(r.headers), await r.read()


async def metric(srv: Any, prefix: str) -> float:
    async with srv.http.get(srv.url + "/metrics") as r:
        text = await r.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(prefix))


def completions(server: LlamaProtocolServer) -> list[str]:
    return [r.body["prompt"] for r in server.requests if r.path.endswith("completions")]


def spoken(prompt: str) -> str:
    """The text of an Orpheus prompt (`tara: <text><|eot_id|>...`)."""
    assert prompt.startswith(format_prompt("tara", "").split("<|eot_id|>")[0])
    return prompt.split("tara: ", 1)[1].split("<|eot_id|>", 1)[0]


def assert_same_backend(headers: dict[str, str], pcm: bytes, min_s: float) -> None:
    assert headers["X-Backend"] == "snac_llamacpp" and headers["X-Degraded"] == "false"
    stats = pcm_stats(pcm)
    assert stats.duration_s >= min_s and stats.rms_dbfs > -60


async def test_streams_spread_over_both_upstreams(serve, snac_dir) -> None:
    async with LlamaProtocolServer(script()) as a, LlamaProtocolServer(script()) as b:
        srv = await start_pool(serve, snac_dir, a, b)
        texts = [f"Stream number {i} says hello." for i in range(4)]
        results = await asyncio.gather(*(speak(srv, t) for t in texts))
        for headers, pcm in results:
            assert_same_backend(headers, pcm, 1.0)
        assert sorted([len(completions(a)), len(completions(b))]) == [2, 2]
        async with srv.http.get(srv.url + "/adapters") as r:
            rows = {row["name"]: row for row in (await r.json())["adapters"]}
        upstreams = rows["snac_llamacpp"]["upstreams"]
        assert [u["address"] for u in upstreams] == [a.url, b.url]
        assert all(u["state"] == "up" and u["streams"] == 2 for u in upstreams)


async def test_an_upstream_killed_mid_stream_hands_over_the_rest(serve, snac_dir) -> None:
    text = ("The keeper climbed the stairs at dusk and wound the lamp, "
            "and the light swept over the dark water.")
    async with LlamaProtocolServer(script(realtime=2.0)) as a, \
            LlamaProtocolServer(script(realtime=2.0)) as b:
        srv = await start_pool(serve, snac_dir, a, b)
        async with srv.http.post(srv.url + "/v1/audio/speech", json={
                "input": text, "voice": "tara", "response_format": "pcm"}) as r:
            assert r.status == 200
            headers = dict(r.headers)
            first = await r.content.readany()  # audio is flowing from one upstream
            victim, other = (a, b) if a.open_connections() and a.requests else (b, a)
            assert completions(victim) and not completions(other)
            await victim.aclose()  # killed: listening socket and every connection closed
            pcm = first + await r.read()
        assert_same_backend(headers, pcm, 2.0)
        # the other upstream spoke the rest: the unheard end of the cut segment, not its start
        cut, resumed = spoken(completions(victim)[0]), spoken(completions(other)[0])
        assert cut.endswith(resumed) and 0 < len(resumed) < len(cut), (cut, resumed)
        assert "dark water." in " ".join(spoken(p) for p in completions(other))
        assert await metric(srv, "tts_backend_failover_total") == 0
        assert await metric(srv, 'tts_requests_total{backend="snac_llamacpp",status="completed"}') == 1


async def test_an_upstream_killed_between_streams_costs_nothing(serve, snac_dir) -> None:
    async with LlamaProtocolServer(script()) as a, LlamaProtocolServer(script()) as b:
        srv = await start_pool(serve, snac_dir, a, b)
        await asyncio.gather(*(speak(srv, f"Warm {i}.") for i in range(2)))
        assert completions(a) and completions(b)  # both hold kept-alive connections now
        await a.aclose()  # kill: refuses connections, its kept-alive connections dropped
        held = Reserved(a.port)  # and nobody else takes its port meanwhile
        before = len(completions(b))
        results = await asyncio.gather(*(speak(srv, f"After the kill {i}.") for i in range(3)))
        for headers, pcm in results:
            assert_same_backend(headers, pcm, 0.5)
        assert len(completions(b)) == before + 3
        async with srv.http.get(srv.url + "/adapters") as r:
            rows = {row["name"]: row for row in (await r.json())["adapters"]}
        states = {u["address"]: u for u in rows["snac_llamacpp"]["upstreams"]}
        assert states[a.url]["state"] != "up" and states[a.url]["last_error"]
        assert rows["snac_llamacpp"]["ready"]  # one upstream is enough
        # it comes back on the same port: after its backoff a probe returns it to the pool
        revived = LlamaProtocolServer(script())
        await revived.start(held.release())
        try:
            deadline = time.monotonic() + 20
            for i in itertools.count():  # the first pick after the backoff starts the probe
                headers, pcm = await speak(srv, f"Back again {i}.")
                assert_same_backend(headers, pcm, 0.5)
                if completions(revived):
                    break
                assert time.monotonic() < deadline, "the revived upstream took no stream"
        finally:
            await revived.aclose()
        assert await metric(srv, "tts_backend_failover_total") == 0
