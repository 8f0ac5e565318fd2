"""Part `realtime`: WebRTC connect, pacing, barge-in, CPU per stream; WS vs HTTP first audio.

Everything runs on 127.0.0.1: the server in-process for connect, barge-in and first audio, in
a child process for pacing and CPU (so that the aiortc clients' own work, Opus decoding and
jitter buffers, is neither counted nor competing for the server's loop). Knobs:
`--set realtime.pacing_s=30` (the 10-minute drift check is 600), `--set trials=20` (connects;
half as many barge-ins and first-audio pairs).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import numpy as np

from bench.procs import free_port, tcp_ready
from bench.record import pct
from bench.servers import start_child
from bench.suite import PartContext
from server.config import Settings
from server.faces.realtime.webrtc import PEERS
from tests.conftest import running_server
from tests.rtc_client import SILENT_DBFS, RtcClient
from tests.test_webrtc import LONG_TEXT, caller_speech, first_silence_after
from tests.test_webrtc_first_audio import watched_peer


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


FIRST_AUDIO_TEXT = "Sure! Here is the first sentence of a streamed reply, and then a bit more."


def _settings(tmp: Path, **kw: Any) -> Settings:
    kw.setdefault("tts_backend", "synthetic")
    return Settings(webrtc_host_addresses="127.0.0.1", outputs_dir=tmp / "outputs", **kw)


def _count_first_packet(client: RtcClient) -> dict[str, float]:
    """Wrap the client's audio receiver so the first RTP packet's arrival is recorded."""
    seen: dict[str, float] = {}
    receiver = client.pc.getTransceivers()[0].receiver
    original = receiver._handle_rtp_packet

    async def handle(packet: Any, arrival_time_ms: int) -> None:
        seen.setdefault("at", time.monotonic())
        await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle  # this instance only
    return seen


# --- WebRTC connect -----------------------------------------------------------------------


async def bench_connect(srv: Any, trials: int) -> dict[str, float | None]:
    packet_ms, frame_ms, answer_ms = [], [], []
    for _ in range(trials):
        client = RtcClient(srv.url, srv.http)
        t0 = time.monotonic()
        connect = asyncio.ensure_future(client.connect())
        while client.pc is None or not client.pc.getTransceivers():  # noqa: ASYNC110
            await asyncio.sleep(0)
        first = _count_first_packet(client)
        await connect
        answer_ms.append(1000 * (time.monotonic() - t0))  # includes the channel opening
        deadline = time.monotonic() + 5
        while (client.first_packet_at is None or "at" not in first) and (  # noqa: ASYNC110
            time.monotonic() < deadline
        ):
            await asyncio.sleep(0.002)
        packet_ms.append(1000 * (first.get("at", float("inf")) - client.offer_sent_at))
        frame_ms.append(1000 * ((client.first_packet_at or float("inf")) - client.offer_sent_at))
        await client.close()
    return {
        "connect_p50_ms": pct(packet_ms, 50),
        "connect_p95_ms": pct(packet_ms, 95),
        "connect_first_frame_p95_ms": pct(frame_ms, 95),  # + the client's 80 ms jitter buffer
        "connect_channel_open_p95_ms": pct(answer_ms, 95),
    }


# --- barge-in -----------------------------------------------------------------------------


async def bench_barge_in(srv: Any, trials: int) -> dict[str, float | None]:
    speech = caller_speech()
    total, server, vad = [], [], []
    for _ in range(trials):
        c = RtcClient(srv.url, srv.http)
        await c.connect()
        await c.next_event("session.created")
        peer = srv.app[PEERS].get(c.pc_id)
        c.send(type="input_text.append", text=LONG_TEXT)
        c.send(type="input_text.done")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # steady reply audio at the client
            recent = c.frames[-10:]
            if len(c.frames) > 60 and all(f.dbfs >= SILENT_DBFS for f in recent):
                break
            await asyncio.sleep(0.01)
        c.mic.say(speech)
        await c.next_event("response.done", timeout=10)
        await asyncio.sleep(0.8)
        t_onset = c.mic.speech_sent_at
        t_silent = first_silence_after(c.frames, t_onset) if t_onset else None
        if peer is not None and peer.barge_ins and t_onset and t_silent:
            b = peer.barge_ins[-1]
            total.append(1000 * (t_silent - t_onset))
            vad.append(1000 * (b.vad_at - t_onset))
            if b.first_silent_frame_at is not None:
                server.append(1000 * (b.first_silent_frame_at - b.vad_at))
        await c.close()
    return {
        "barge_in_trials": float(len(total)),
        "barge_in_p50_ms": pct(total, 50),
        "barge_in_p95_ms": pct(total, 95),
        "barge_in_vad_p50_ms": pct(vad, 50),  # mic onset -> VAD decision (jitter buffer + N-of-M)
        "barge_in_server_p99_ms": pct(server, 99),  # VAD decision -> first faded frame out
    }


# --- pacing and CPU per stream (server in a child process) --------------------------------

# The child server records the departure time of every frame of every track while recording
# is on (SIGUSR1 toggles it) and writes them to a file on SIGUSR2; its CPU time comes from
# /proc. So neither figure includes the clients' own work (Opus decode, jitter buffers).
_SERVER = """
import asyncio, json, signal, sys
from aiohttp import web
from server.app import create_app
from server.config import Settings
from server.faces.realtime.webrtc import PEERS

async def main():
    app = create_app(Settings(tts_backend="synthetic", webrtc_host_addresses="127.0.0.1",
                              outputs_dir=sys.argv[1], parallel_streams=32))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", int(sys.argv[3]))
    await site.start()
    times, reanchored, state = {}, {}, {"on": False}
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: state.update(on=not state["on"]))
    def dump():
        with open(sys.argv[2], "w") as f:
            json.dump({"times": times, "reanchored_ms": reanchored}, f)
    loop.add_signal_handler(signal.SIGUSR2, dump)
    while True:
        for pid, peer in list(app[PEERS].peers.items()):
            reanchored[pid] = peer.track.reanchored_ms
            if pid in times:
                continue
            times[pid] = []
            hook = peer.track.on_frame
            def record(at, pts, voiced, faded, out=times[pid], hook=hook):
                if state["on"] and voiced:
                    out.append(at)
                hook(at, pts, voiced, faded)
            peer.track.on_frame = record
        await asyncio.sleep(0.05)
asyncio.run(main())
"""


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _cpu_pct(pid: int, seconds: float) -> float:
    c0, t0 = _cpu_s(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return 100.0 * (_cpu_s(pid) - c0) / (time.monotonic() - t0)


async def _speaking_clients(url: str, http: Any, n: int, *, with_mic: bool) -> list[RtcClient]:
    clients = []
    for _ in range(n):
        c = RtcClient(url, http)
        await c.connect(with_mic=with_mic)
        clients.append(c)
    return clients


def _text_lasting(seconds: float) -> str:
    """Text the synthetic engine speaks for at least `seconds` (it says 60 ms per character)."""
    chars = int(seconds * 1000 / 60) + 400
    return (LONG_TEXT + " ") * (chars // len(LONG_TEXT) + 1)


async def _speak(clients: list[RtcClient], seconds: float) -> None:
    text = _text_lasting(seconds + 5)
    for c in clients:
        for i in range(0, len(text), 2000):  # small data channel messages
            c.send(type="input_text.append", text=text[i : i + 2000])
        c.send(type="input_text.done")
    for c in clients:
        await c.next_event("response.audio.started", timeout=10)
    await asyncio.sleep(1.0)


def _pacing(stats: dict[str, Any]) -> dict[str, float | None]:
    devs: list[float] = []
    drifts: list[float] = []
    bursts = 0
    for times in stats["times"].values():
        if len(times) < 3:
            continue
        at = np.asarray(times)
        devs += list(np.abs(np.diff(at) * 1000 - 20.0))
        drift = (at[-1] - at[0]) * 1000 - 20.0 * (len(at) - 1)
        drifts.append(abs(drift))
        bursts += int(np.sum((at[2:] - at[:-2]) < 0.005))  # 3 frames within 5 ms
    return {
        "pacing_dev_p99_ms": pct(devs, 99),
        "pacing_dev_max_ms": float(max(devs)) if devs else float("nan"),
        "pacing_drift_ms": float(max(drifts)) if drifts else float("nan"),
        "pacing_bursts": float(bursts),
        "pacing_reanchored_ms": float(sum(stats["reanchored_ms"].values())),
    }


async def bench_pacing_and_cpu(tmp: Path, streams: int, pacing_s: float) -> dict[str, float | None]:
    """Outbound only (receive-only clients, the target's definition), then full duplex."""
    import aiohttp

    stats_path = tmp / "pacing.json"
    port = free_port()
    out: dict[str, float | None] = {"streams": float(streams), "pacing_seconds": pacing_s}
    async with AsyncExitStack() as stack:
        proc = await start_child(stack, tmp, "realtime-server", [
            sys.executable, "-c", _SERVER, str(tmp / "child-outputs"), str(stats_path),
            str(port)], lambda: tcp_ready("127.0.0.1", port))
        assert proc.pid is not None
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            clients = await _speaking_clients(url, http, streams, with_mic=False)
            await asyncio.sleep(1.0)
            out["cpu_per_idle_stream_pct"] = await _cpu_pct(proc.pid, 5) / streams
            await _speak(clients, pacing_s)
            os.kill(proc.pid, signal.SIGUSR1)  # record departures from now
            out["cpu_per_speaking_stream_pct"] = await _cpu_pct(proc.pid, pacing_s) / streams
            os.kill(proc.pid, signal.SIGUSR1)
            os.kill(proc.pid, signal.SIGUSR2)
            for c in clients:
                await c.close()
            await asyncio.sleep(0.5)
            out |= _pacing(json.loads(stats_path.read_text()))  # noqa: ASYNC240
            clients = await _speaking_clients(url, http, streams, with_mic=True)
            await asyncio.sleep(1.0)
            out["cpu_per_idle_duplex_stream_pct"] = await _cpu_pct(proc.pid, 5) / streams
            await _speak(clients, 10)
            out["cpu_per_speaking_duplex_stream_pct"] = await _cpu_pct(proc.pid, 10) / streams
            for c in clients:
                await c.close()
    return out


# --- WebSocket vs HTTP first audio ----------------------------------------------------------


async def ws_first_audio(srv: Any, text: str, session: dict[str, Any] | None = None) -> float:
    """ms from the first 3-character delta (LLM-style, as fast as they come) to the first
    binary message, on a fresh native WebSocket; `session` goes in a session.update first."""
    import aiohttp

    async with srv.http.ws_connect(srv.url.replace("http://", "ws://") + "/v1/audio/speech/ws") as ws:
        await ws.receive()  # session.created
        if session:
            await ws.send_str(json.dumps({"type": "session.update", "session": session}))
            await ws.receive()  # session.updated
        t0 = time.monotonic()
        for i in range(0, len(text), 3):
            await ws.send_str(json.dumps({"type": "input_text.append", "text": text[i : i + 3]}))
        await ws.send_str(json.dumps({"type": "input_text.done"}))
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                return 1000 * (time.monotonic() - t0)
    return float("nan")


async def http_first_audio(srv: Any, text: str, **fields: Any) -> float:
    """ms from the POST /v1/audio/speech (PCM, `fields` added) to its first body bytes."""
    t0 = time.monotonic()
    async with srv.http.post(srv.url + "/v1/audio/speech",
                             json={"input": text, "response_format": "pcm", **fields}) as r:
        async for _chunk in r.content.iter_any():
            return 1000 * (time.monotonic() - t0)
    return float("nan")


async def _webrtc_first_audio(srv: Any, client: RtcClient, voiced_at: list[float],
                              text: str) -> tuple[float, float]:
    """(data-channel request -> the track's first voiced frame leaving the server,
    -> the first audible frame out of the aiortc receiver's jitter buffer), ms."""
    voiced_at.clear()
    heard_from = len(client.frames)
    t0 = time.monotonic()
    client.send(type="input_text.append", text=text)
    client.send(type="input_text.done")
    while not voiced_at or not any(f.dbfs > SILENT_DBFS for f in client.frames[heard_from:]):
        if time.monotonic() - t0 > 10:
            return float("nan"), float("nan")
        await asyncio.sleep(0.001)
    heard = next(f.at for f in client.frames[heard_from:] if f.dbfs > SILENT_DBFS)
    client.send(type="response.cancel")
    await client.next_event("response.done", timeout=10)
    await asyncio.sleep(0.2)  # the fade and the silence after it
    return 1000 * (voiced_at[0] - t0), 1000 * (heard - t0)


async def bench_first_audio(srv: Any, trials: int) -> dict[str, float | None]:
    """First audio of the same sentence, interleaved: HTTP's first byte, WebSocket's first
    binary message (3-character deltas), and WebRTC split in two: the server's share (the
    request on the data channel to the track's first voiced frame, after the Opus encode) and
    what the receiver adds (aiortc's jitter buffer, 4 frames as a browser holds about 3)."""
    client, peer, voiced_at = await watched_peer(srv)
    await http_first_audio(srv, FIRST_AUDIO_TEXT)  # warm the engine
    await _webrtc_first_audio(srv, client, voiced_at, FIRST_AUDIO_TEXT)  # and the track
    ws, http, rtc_server, rtc_heard = [], [], [], []
    for _ in range(trials):
        http.append(await http_first_audio(srv, FIRST_AUDIO_TEXT))
        ws.append(await ws_first_audio(srv, FIRST_AUDIO_TEXT))
        server_ms, heard_ms = await _webrtc_first_audio(srv, client, voiced_at, FIRST_AUDIO_TEXT)
        rtc_server.append(server_ms)
        rtc_heard.append(heard_ms)
    await client.close()
    return {
        "http_first_audio_p50_ms": pct(http, 50),
        "ws_first_audio_p50_ms": pct(ws, 50),
        "ws_minus_http_first_audio_ms": _minus(pct(ws, 50), pct(http, 50)),
        "webrtc_server_first_frame_p50_ms": pct(rtc_server, 50),
        "webrtc_server_minus_http_first_audio_ms": _minus(pct(rtc_server, 50), pct(http, 50)),
        "webrtc_heard_aiortc_p50_ms": pct(rtc_heard, 50),
        "webrtc_receiver_share_p50_ms": _minus(pct(rtc_heard, 50), pct(rtc_server, 50)),
        "webrtc_early_starts": float(peer.track.early_starts),
    }


# --- the whole run ------------------------------------------------------------------------


async def _run(trials: int, pacing_s: float, out: Path) -> dict[str, float | None]:
    results: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        async with running_server(_settings(tmp, parallel_streams=16)) as srv:
            results |= await bench_connect(srv, trials)
            results |= await bench_barge_in(srv, max(3, trials // 2))
        async with running_server(_settings(tmp, tts_backend="piper")) as srv:
            results |= await bench_first_audio(srv, max(3, trials // 2))
        results |= await bench_pacing_and_cpu(out, streams=4, pacing_s=pacing_s)
    return results


def run(ctx: PartContext) -> dict[str, float | None]:
    """Measure the realtime figures (targets: bench/targets.py)."""
    pacing_s = float(ctx.param("pacing_s") or (8 if ctx.quick else 30))
    return ctx.run_async(_run(ctx.trials(20, 4), pacing_s, ctx.out))
