"""The real figures behind the wall-clock bounds that tests keep loose (5x) on a shared machine.

tests/test_ws.py bounds the WebSocket lead over playback, tests/test_snac_llamacpp.py how soon
the llama.cpp socket closes after a cancel, tests/test_http_realtime.py how soon a DELETEd
response ends. The tests only catch a broken mechanism; this section measures how close to the
design each one really is (part `loose_bounds`; `--set trials=20` sets the trials of each;
the bounds are targets in bench/targets.py).
"""

from __future__ import annotations

import asyncio
import importlib.util
import tempfile
import time
from contextlib import aclosing
from pathlib import Path
from typing import Any

from bench.record import pct
from bench.suite import PartContext
from server.config import Settings
from tests.conftest import running_server
from tests.test_ws import connect

WS_LEAD_MS = 500.0
WS_REPORTED_LEAD_MS = 300.0
THREE_SECONDS = "A short paragraph of about three seconds of audio."
LONG = "This sentence is part of a long narration that keeps going. " * 30


def _stats(name: str, xs: list[float]) -> dict[str, float | None]:
    return {f"{name}_p50": pct(xs, 50), f"{name}_max": max(xs, default=None)}


def _settings(tmp: Path, **kw: Any) -> Settings:
    return Settings(tts_backend="synthetic", outputs_dir=tmp / "outputs",
                    webrtc_host_addresses="127.0.0.1", **kw)


async def ws_lead_overshoot_ms(srv: Any) -> float:
    """How far past WS_MAX_LEAD_MS the client ever got, with no playback reports (the server
    models real-time playback from the first frame)."""
    c = await connect(srv)
    try:
        await c.send(type="input_text.append", text=THREE_SECONDS)
        await c.send(type="input_text.done")
        await c.next("response.done")
        t_first = c.frames[0][0]
        received = worst = 0.0
        for at, pcm, _ in c.frames:
            received += len(pcm) / 48
            worst = max(worst, received - 1000 * (at - t_first))
        return worst - WS_LEAD_MS
    finally:
        await c.ws.close()


async def ws_reported_overshoot_ms(srv: Any) -> float:
    """How far past WS_MAX_LEAD_MS ahead of the last reported position (plus the time since
    that report) a half-speed client ever got."""
    c = await connect(srv)
    try:
        await c.send(type="input_text.append", text="Half speed playback for this little test.")
        await c.send(type="input_text.done")
        await c.next("response.audio.started")
        t0 = time.monotonic()
        reported: list[tuple[float, float]] = []
        while "response.done" not in c.types() and time.monotonic() - t0 < 15:
            played = 500 * (time.monotonic() - t0)
            await c.send(type="playback.report", played_ms=played)
            reported.append((time.monotonic(), played))
            await asyncio.sleep(0.05)
        received = worst = 0.0
        for at, pcm, _ in c.frames:
            received += len(pcm) / 48
            known = [(t, p) for t, p in reported if t <= at]
            t_report, position = known[-1] if known else (t0, 0.0)
            worst = max(worst, received - position - 1000 * (at - t_report))
        return worst - WS_REPORTED_LEAD_MS
    finally:
        await c.ws.close()


async def http_delete_end_ms(srv: Any) -> float:
    """DELETE /v1/audio/speech/{id} mid-stream -> the response body ends."""
    async with srv.http.post(srv.url + "/v1/audio/speech",
                             json={"input": LONG, "response_format": "pcm"}) as r:
        await r.content.read(9600)
        async with srv.http.delete(f"{srv.url}/v1/audio/speech/{r.headers['X-Request-ID']}"):
            pass
        t = time.perf_counter()
        await r.read()
        return 1000 * (time.perf_counter() - t)


async def snac_socket_close_ms(tmp: Path, trials: int) -> dict[str, float | None]:
    """Closing or cancelling a SNAC stream -> the llama.cpp connection closed (needs torch)."""
    from adapters.base import TTSInput
    from adapters.orpheus.adapter import SnacLlamaCppAdapter
    from server.config import Settings
    from tests.llama_protocol_server import LlamaProtocolServer, script_from_tokens
    from tests.snac_fixture import frames_to_token_text, random_frames, write_snac_checkpoint

    model_dir = write_snac_checkpoint(tmp / "snac")
    script = script_from_tokens(frames_to_token_text(random_frames(200)), tokens_per_s=400)
    closed, cancelled = [], []
    async with LlamaProtocolServer(script) as server:
        adapter = SnacLlamaCppAdapter.from_options(Settings(
            snac_url=server.url, snac_model=str(model_dir), snac_device="cpu").model_dump())
        try:
            for _ in range(trials):
                async with aclosing(adapter.synth_stream(TTSInput(text="long"))) as stream:
                    await stream.__anext__()
                    t = time.monotonic()
                closed.append(1000 * (await server.wait_all_closed(timeout_s=5.0) - t))

                got = asyncio.Event()
                task = asyncio.create_task(_consume(adapter.synth_stream(TTSInput(text="long")),
                                                    got))
                await asyncio.wait_for(got.wait(), 10)
                task.cancel()
                t = time.monotonic()
                await asyncio.gather(task, return_exceptions=True)
                cancelled.append(1000 * (await server.wait_all_closed(timeout_s=5.0) - t))
        finally:
            await adapter.aclose()
    return _stats("snac_close_after_aclose_ms", closed) | _stats(
        "snac_close_after_cancel_ms", cancelled)


async def _consume(stream: Any, got: asyncio.Event) -> None:
    async for _ in stream:
        got.set()


async def _run(trials: int) -> dict[str, float | None]:
    results: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        # The orchestrator would run 2.5 s ahead: only the socket's own bound holds the lead.
        buffers = {"playback_buffer_ms": 2500, "buffer_max_ms": 3000}
        async with running_server(_settings(tmp, ws_max_lead_ms=WS_LEAD_MS, **buffers)) as srv:
            results |= _stats("ws_lead_overshoot_ms",
                              [await ws_lead_overshoot_ms(srv) for _ in range(trials)])
        async with running_server(
                _settings(tmp, ws_max_lead_ms=WS_REPORTED_LEAD_MS, **buffers)) as srv:
            results |= _stats("ws_reported_overshoot_ms",
                              [await ws_reported_overshoot_ms(srv) for _ in range(max(3, trials // 4))])
        async with running_server(_settings(tmp, synthetic_rtf=1.0)) as srv:
            results |= _stats("http_delete_end_ms",
                              [await http_delete_end_ms(srv) for _ in range(trials)])
        if importlib.util.find_spec("torch") is not None:
            results |= await snac_socket_close_ms(tmp, max(3, trials // 4))
    return results


def run(ctx: PartContext) -> dict[str, float | None]:
    results = ctx.run_async(_run(ctx.trials(20, 3)))
    if importlib.util.find_spec("torch") is None:
        results["snac_close"] = None  # needs the `snac` extra (torch)
    return results
