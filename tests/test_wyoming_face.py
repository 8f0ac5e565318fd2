"""The Wyoming face against the real `wyoming` client: describe, plain and streaming synthesis
exactly as Home Assistant sends it, voices, errors as events, concurrency and disconnects."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from wyoming.client import AsyncTcpClient, AsyncUnixClient
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

from server.app_keys import BACKENDS, ORCHESTRATOR
from server.config import Settings, ValidationError
from server.faces.wyoming.face import WYOMING
from tests.audio_check import pcm_stats
from tests.conftest import running_server
from tests.ports import listening_ports, new_listening_port
from tests.wyoming_client import client, read_reply, serve_wyoming, wait_until

TEXT = ("The kettle clicked off just as the rain began, so we stayed in the kitchen and "
        "talked. Nobody wanted to walk home in that weather.")


def pieces(text: str, size: int = 7) -> list[str]:
    """Home Assistant forwards LLM deltas: fixed-size pieces that split words."""
    return [text[i:i + size] for i in range(0, len(text), size)]


async def synthesize(port: int, text: str, **voice: str) -> bytes:
    async with client(port) as c:
        v = SynthesizeVoice(**voice) if voice else None
        await c.write_event(Synthesize(text=text, voice=v).event())
        heard = await read_reply(c)
        assert heard.types[-1] == "audio-stop", heard.errors()
        return bytes(heard.pcm)


async def describe(port: int) -> Info:
    async with client(port) as c:
        await c.write_event(Describe().event())
        ev = await asyncio.wait_for(c.read_event(), 10)
    assert ev is not None and Info.is_type(ev.type)
    return Info.from_event(ev)


async def test_describe_lists_the_active_backends_voices(serve) -> None:
    srv, port = await serve_wyoming(serve, tts_backend="synthetic")
    info = await describe(port)
    assert info.asr == [] and len(info.tts) == 1
    program = info.tts[0]
    assert program.name == "morpheus" and program.installed
    assert program.supports_synthesize_streaming is True
    assert [(v.name, v.description, v.languages, v.installed, v.speakers)
            for v in program.voices] == [("sine", "Sine", ["en"], True, None),
                                         ("buzz", "Buzz", ["en"], True, None)]
    # the active backend is read per describe: a switch shows at once
    async with srv.http.post(f"{srv.url}/config", json={"tts_backend": "piper"}) as r:
        assert r.status == 200
    voices = (await describe(port)).tts[0].voices
    adapter = srv.app[BACKENDS].instance("piper")
    assert [v.name for v in voices] == [v.id for v in adapter.voices()]
    joe = next(v for v in voices if v.name == "en_US-joe-medium")
    assert joe.installed and joe.languages == ["en-US"] and joe.description == "joe"


async def test_plain_synthesis_is_real_audio_of_the_right_length(serve) -> None:
    srv, port = await serve_wyoming(serve, tts_backend="piper")
    async with client(port) as c:
        await c.write_event(Synthesize(text=TEXT).event())
        heard = await read_reply(c)
    assert heard.types[0] == "audio-start" and heard.types[-1] == "audio-stop"
    assert heard.types.count("audio-start") == 1 and heard.types.count("audio-stop") == 1
    assert heard.start is not None and (heard.start.rate, heard.start.width) == (24000, 2)
    assert heard.types.count("audio-chunk") > 10  # sent in pieces, not one blob
    stats = pcm_stats(bytes(heard.pcm))
    assert stats.rms_dbfs > -35, "silent audio"
    assert 40 <= 1000 * stats.duration_s / len(TEXT) <= 110, stats.duration_s  # speech pace
    # the same text over HTTP on the same server: the same speech (Piper's durations vary a bit)
    async with srv.http.post(f"{srv.url}/v1/audio/speech",
                             json={"input": TEXT, "response_format": "pcm"}) as r:
        http_s = len(await r.read()) / 48000
    assert abs(stats.duration_s - http_s) / http_s < 0.15


async def test_home_assistant_streaming_sequence_is_spoken_once_and_early(serve) -> None:
    """synthesize-start, pieces split mid-word (audio starts while text is still arriving),
    the compatibility synthesize, synthesize-stop -> one audio cycle, synthesize-stopped."""
    srv, port = await serve_wyoming(serve, tts_backend="piper")
    plain_s = len(await synthesize(port, TEXT)) / 48000
    orch = srv.app[ORCHESTRATOR]
    requests_before = orch.totals["requests"]
    first_sentence, rest = TEXT.split(". ", 1)
    voice = SynthesizeVoice(name="en_US-joe-medium")
    async with client(port) as c:
        first_audio = asyncio.Event()
        sent_rest_at: list[float] = []

        async def write() -> None:  # HA writes text in a task while it reads audio
            await c.write_event(SynthesizeStart(voice=voice).event())
            for p in pieces(first_sentence + ". "):
                await c.write_event(SynthesizeChunk(text=p).event())
            await asyncio.wait_for(first_audio.wait(), 30)  # the rest of the text waits
            sent_rest_at.append(time.monotonic())
            for p in pieces(rest):
                await c.write_event(SynthesizeChunk(text=p).event())
            await c.write_event(Synthesize(text=TEXT, voice=voice).event())
            await c.write_event(SynthesizeStop().event())

        writer = asyncio.create_task(write())
        heard = await read_reply(c, until=("audio-chunk",))
        first_audio.set()
        heard = await read_reply(c, until=("synthesize-stopped",), heard=heard)
        await writer
        assert heard.first_audio_at is not None and heard.first_audio_at < sent_rest_at[0]
        assert heard.types.count("audio-start") == 1 and heard.types.index("audio-start") == 0
        assert heard.types.count("audio-stop") == 1 and heard.types[-2] == "audio-stop"
        assert heard.errors() == []
        stats = pcm_stats(bytes(heard.pcm))
        assert stats.rms_dbfs > -35
        assert abs(stats.duration_s - plain_s) / plain_s < 0.15, (stats.duration_s, plain_s)
        # unlike wyoming-piper, a plain synthesize after a stream is spoken, not ignored
        await c.write_event(Synthesize(text="And one more thing.").event())
        after = await read_reply(c)
        assert after.types[-1] == "audio-stop" and 0.5 < after.seconds < 3, after.seconds
    await wait_until(lambda: orch.snapshot()["active_streams"] == 0)
    assert orch.totals["requests"] == requests_before + 2  # the compatibility copy: none


async def test_first_audio_comes_before_a_long_first_sentence_ends(serve) -> None:
    """Text trickling in as an LLM writes it: the first segment is cut at a word boundary once
    a clause's worth has arrived; the segment size does not grow while waiting for text."""
    _, port = await serve_wyoming(serve, tts_backend="synthetic")
    sentence = ("so the lights in the kitchen and the hall and the porch are all off now and "
                "the heating is down to twenty one degrees for the night as you asked me to")
    async with client(port) as c:
        await c.write_event(SynthesizeStart().event())
        for p in pieces(sentence[:100], 4):
            await c.write_event(SynthesizeChunk(text=p).event())
            await asyncio.sleep(0.01)
        heard = await read_reply(c, until=("audio-chunk",), timeout_s=10)
        assert heard.types == ["audio-start", "audio-chunk"]
        await c.write_event(SynthesizeChunk(text=sentence[100:]).event())
        await c.write_event(SynthesizeStop().event())
        heard = await read_reply(c, until=("synthesize-stopped",), heard=heard)
        assert heard.errors() == [] and heard.seconds > 0.04 * len(sentence)


async def test_streaming_without_the_compatibility_synthesize(serve) -> None:
    """wyoming-bench sends no compatibility copy; an empty stream still ends properly."""
    _, port = await serve_wyoming(serve, tts_backend="synthetic")
    async with client(port) as c:
        await c.write_event(SynthesizeStart().event())
        for p in pieces("One sentence. Another one here. "):
            await c.write_event(SynthesizeChunk(text=p).event())
        await c.write_event(SynthesizeStop().event())
        heard = await read_reply(c, until=("synthesize-stopped",))
        assert heard.types[0] == "audio-start" and heard.types[-2:] == ["audio-stop",
                                                                        "synthesize-stopped"]
        await c.write_event(SynthesizeStart().event())
        await c.write_event(SynthesizeStop().event())
        empty = await read_reply(c, until=("synthesize-stopped",))
        assert empty.types == ["error", "synthesize-stopped"]
        assert empty.errors()[0]["code"] == "nothing_speakable"


async def test_voice_selection_by_name_and_language(serve) -> None:
    _, port = await serve_wyoming(serve, tts_backend="synthetic")
    text = "Pick a voice, any voice."
    sine, buzz, default = (await synthesize(port, text, name="sine"),
                           await synthesize(port, text, name="buzz"),
                           await synthesize(port, text))
    assert len(sine) == len(buzz) and sine != buzz  # buzz adds harmonics: another voice
    assert default == sine  # the backend's default voice
    assert await synthesize(port, text, language="en_US") == sine

    def spectrum_peaks(pcm: bytes) -> int:
        x = np.abs(np.fft.rfft(np.frombuffer(pcm, "<i2").astype(float)))
        return int((x > 0.1 * x.max()).sum())

    assert spectrum_peaks(buzz) > spectrum_peaks(sine)


async def test_bad_voice_speaker_and_language_are_error_events(serve) -> None:
    _, port = await serve_wyoming(serve, tts_backend="synthetic")
    async with client(port) as c:
        for voice, code in ((SynthesizeVoice(name="nobody"), "unknown_voice"),
                            (SynthesizeVoice(name="buzz", speaker="2"), "unknown_speaker"),
                            (SynthesizeVoice(language="tlh"), "unknown_language")):
            await c.write_event(Synthesize(text="Hello there.", voice=voice).event())
            heard = await read_reply(c)
            assert heard.types == ["error"] and heard.errors()[0]["code"] == code
            assert heard.errors()[0]["text"]
        # a streaming request with a bad voice fails at once and still ends with stopped
        await c.write_event(SynthesizeStart(voice=SynthesizeVoice(name="nobody")).event())
        assert (await read_reply(c)).errors()[0]["code"] == "unknown_voice"
        await c.write_event(SynthesizeChunk(text="Hello").event())
        await c.write_event(Synthesize(text="Hello").event())
        await c.write_event(SynthesizeStop().event())
        assert (await read_reply(c, until=("synthesize-stopped",))).types == ["synthesize-stopped"]
        # the connection is still good
        await c.write_event(Synthesize(text="Still here.").event())
        assert (await read_reply(c)).types[-1] == "audio-stop"


@pytest.mark.parametrize("case", ["nothing_speakable", "text_too_long", "unsupported",
                                  "invalid_field", "out_of_sequence", "engine_error"])
async def test_errors_are_events_and_the_connection_survives(serve, case: str) -> None:
    _, port = await serve_wyoming(serve, tts_backend="synthetic", max_input_chars=200,
                                  fallback_backend="",
                                  synthetic_fail_times=1 if case == "engine_error" else 0)
    async with client(port) as c:
        if case == "nothing_speakable":
            await c.write_event(Synthesize(text="\u0000 ... \u0007").event())
        elif case == "text_too_long":
            await c.write_event(Synthesize(text="Words. " * 40).event())
        elif case == "unsupported":
            await c.write_event(Synthesize(text="<speak>Hi</speak>", text_format="ssml").event())
        elif case == "invalid_field":
            await c.write_event(Event(type="synthesize", data={"text": 5}))
        elif case == "out_of_sequence":
            await c.write_event(SynthesizeChunk(text="orphan").event())
        else:
            await c.write_event(Synthesize(text="This fails once.").event())
        heard = await read_reply(c)
        assert heard.types == ["error"], heard.types
        assert heard.errors()[0]["code"] == case and len(heard.errors()[0]["text"]) > 10
        await c.write_event(Synthesize(text="Hello again.").event())
        again = await read_reply(c)
        assert again.types[0] == "audio-start" and again.types[-1] == "audio-stop"


async def test_streaming_text_over_the_limit_fails_that_stream(serve) -> None:
    _, port = await serve_wyoming(serve, tts_backend="synthetic", max_input_chars=100)
    async with client(port) as c:
        await c.write_event(SynthesizeStart().event())
        for p in pieces("Too many words here. " * 10):
            await c.write_event(SynthesizeChunk(text=p).event())
        await c.write_event(SynthesizeStop().event())
        heard = await read_reply(c, until=("synthesize-stopped",))
        assert [e["code"] for e in heard.errors()] == ["text_too_long"]
        assert heard.types[-1] == "synthesize-stopped" and "audio-stop" not in heard.types


async def test_backend_down_and_busy_are_error_events(serve, tmp_path) -> None:
    # Orpheus without SNAC weights (or torch) cannot load: the backend is down.
    _, port = await serve_wyoming(serve, tts_backend="snac_llamacpp", snac_model="",
                                  fallback_backend="")
    async with client(port) as c:
        await c.write_event(Synthesize(text="Is anybody there?").event())
        heard = await read_reply(c)
        assert heard.types == ["error"] and heard.errors()[0]["code"] == "backend_unavailable"

    _, port = await serve_wyoming(serve, tts_backend="synthetic", synthetic_rtf=1.0,
                                  parallel_streams=1, queue_max=0)
    async with client(port) as a, client(port) as b:
        await a.write_event(Synthesize(text="A long sentence that keeps the only slot busy "
                                            "for a few seconds at real time.").event())
        await read_reply(a, until=("audio-chunk",))
        await b.write_event(Synthesize(text="Me too.").event())
        heard = await read_reply(b)
        assert heard.types == ["error"] and heard.errors()[0]["code"] == "busy"


async def test_two_connections_speak_at_the_same_time(serve) -> None:
    """wyoming-piper serialises every request behind one lock; Morpheus overlaps them."""
    _, port = await serve_wyoming(serve, tts_backend="synthetic", synthetic_rtf=2.0)
    text = "Two speakers talking over each other for about two seconds."

    async def one() -> tuple[float, float]:
        async with client(port) as c:
            await c.write_event(Synthesize(text=text).event())
            heard = await read_reply(c)
            assert heard.types[-1] == "audio-stop" and heard.seconds > 2
            assert heard.first_audio_at and heard.last_audio_at
            return heard.first_audio_at, heard.last_audio_at

    (a0, a1), (b0, b1) = await asyncio.gather(one(), one())
    assert max(a0, b0) < min(a1, b1), "the second reply waited for the first"


async def test_client_leaving_mid_stream_stops_synthesis(serve) -> None:
    srv, port = await serve_wyoming(serve, tts_backend="synthetic", synthetic_rtf=1.0)
    orch, face = srv.app[ORCHESTRATOR], srv.app[WYOMING]
    engine = srv.app[BACKENDS].instance("synthetic")
    c = AsyncTcpClient("127.0.0.1", port)
    await c.connect()
    try:
        await c.write_event(Synthesize(text="This would take ten seconds to say. " * 6).event())
        await read_reply(c, until=("audio-chunk",))
        assert orch.snapshot()["active_streams"] == 1
    finally:
        await c.disconnect()
    await wait_until(lambda: orch.snapshot()["active_streams"] == 0, 5)
    await wait_until(lambda: not face.connections, 5)
    made = engine.chunks_made
    await asyncio.sleep(0.5)
    assert engine.chunks_made == made, "the engine kept going after the client left"
    # mid-stream while the stream waits for more text (nothing is being written to the client)
    c = AsyncTcpClient("127.0.0.1", port)
    await c.connect()
    try:
        await c.write_event(SynthesizeStart().event())
        await c.write_event(SynthesizeChunk(text="Short. And then the text stops coming").event())
        await read_reply(c, until=("audio-chunk",))
        # "Short." is spoken (5 letters, 60 ms each); the stream now waits for text
        await wait_until(lambda: sum(st.audio_ms for st in orch.streams.values()) >= 5 * 60)
        assert orch.snapshot()["active_streams"] == 1
    finally:
        await c.disconnect()
    await wait_until(lambda: orch.snapshot()["active_streams"] == 0, 5)


async def test_connection_cap_and_idle_timeout(serve) -> None:
    srv, port = await serve_wyoming(serve, tts_backend="synthetic",
                                    wyoming_max_connections=2, wyoming_idle_timeout_s=1.0)
    face = srv.app[WYOMING]
    async with client(port) as a, client(port) as b:
        for c in (a, b):
            await c.write_event(Describe().event())
            assert (await asyncio.wait_for(c.read_event(), 10)).type == "info"
        async with client(port) as third:
            ev = await asyncio.wait_for(third.read_event(), 10)
            assert ev is not None and ev.type == "error"
            assert ev.data["code"] == "too_many_connections"
            assert await asyncio.wait_for(third.read_event(), 10) is None  # closed
        # idle: both are closed by the server once they say nothing for a second
        assert await asyncio.wait_for(a.read_event(), 15) is None
        assert await asyncio.wait_for(b.read_event(), 15) is None
    await wait_until(lambda: not face.connections)
    # a connection that is listening to a long reply is not idle
    srv2, port2 = await serve_wyoming(serve, tts_backend="synthetic", synthetic_rtf=1.0,
                                      wyoming_idle_timeout_s=0.5)
    async with client(port2) as c:
        await c.write_event(Synthesize(text="Two seconds of audio at real time.").event())
        heard = await read_reply(c)
        assert heard.types[-1] == "audio-stop" and heard.seconds > 1.5


async def test_shutdown_closes_connections_and_their_streams(tmp_path) -> None:
    settings = Settings(tts_backend="synthetic", synthetic_rtf=1.0, outputs_dir=tmp_path,
                        webrtc_host_addresses="127.0.0.1", wyoming_uri="tcp://127.0.0.1:0")
    before = listening_ports(os.getpid())
    async with running_server(settings) as srv:
        port = new_listening_port(before, exclude={srv.port})
        c = AsyncTcpClient("127.0.0.1", port)
        await c.connect()
        await c.write_event(Synthesize(text="A long story that never gets told. " * 5).event())
        await read_reply(c, until=("audio-chunk",))
        orch = srv.app[ORCHESTRATOR]
    try:
        assert orch.snapshot()["active_streams"] == 0
        while (ev := await asyncio.wait_for(c.read_event(), 10)) is not None:
            assert ev.type == "audio-chunk"  # what was in flight; then the server closes
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)  # no longer listening
    finally:
        await c.disconnect()


async def test_unix_socket(serve, tmp_path) -> None:
    path = tmp_path / "morpheus.sock"
    await serve(tts_backend="synthetic", wyoming_uri=f"unix://{path}")
    async with AsyncUnixClient(str(path)) as c:
        await c.write_event(Synthesize(text="Over a unix socket.").event())
        assert (await read_reply(c)).types[-1] == "audio-stop"


async def test_off_by_default_and_uri_validated(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    assert srv.app[WYOMING].uri is None
    for bad in ("stdio://", "tcp://127.0.0.1", "http://127.0.0.1:10200", "unix://"):
        with pytest.raises(ValidationError):
            Settings(wyoming_uri=bad)
    assert Settings(wyoming_uri=" tcp://0.0.0.0:10200 ").wyoming_uri == "tcp://0.0.0.0:10200"


def test_say_does_not_serve_wyoming(tmp_path) -> None:
    """`morpheus say` with WYOMING_URI in .env, while a server holds that port, still speaks."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env_file = tmp_path / ".env"
        env_file.write_text(f"WYOMING_URI=tcp://127.0.0.1:{busy.getsockname()[1]}\n"
                            "TTS_BACKEND=synthetic\n")
        out = tmp_path / "hello.wav"
        root = Path(__file__).resolve().parent.parent
        proc = subprocess.run(
            [sys.executable, "-m", "server.cli", "--env-file", str(env_file),
             "say", "Hello there.", "-o", str(out)],
            env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-500:]
    assert out.stat().st_size > 44 + 4800


async def test_a_client_that_stops_reading_is_closed_after_the_write_timeout(serve) -> None:
    from server.app_keys import METRICS, ORCHESTRATOR
    from tests.wyoming_client import serve_wyoming

    srv, port = await serve_wyoming(serve, tts_backend="synthetic", write_timeout_s=1.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    header = json.dumps({"type": "synthesize",
                         "data": {"text": "Words nobody will read. " * 400}}) + "\n"
    writer.write(header.encode())
    await writer.drain()
    registry = srv.app[METRICS].registry
    for _ in range(400):  # never read: the socket buffers fill and the write times out
        if registry.get_sample_value("tts_timeouts_total", {"kind": "write"}):
            break
        await asyncio.sleep(0.05)
    assert registry.get_sample_value("tts_timeouts_total", {"kind": "write"}) == 1
    for _ in range(100):
        if not srv.app[ORCHESTRATOR].streams:
            break
        await asyncio.sleep(0.05)
    assert not srv.app[ORCHESTRATOR].streams
    writer.close()
