"""openai_tts, xtts and coqui against real servers on 127.0.0.1: what goes on the wire, what
comes back, voices, credentials and health; then end to end through Morpheus's HTTP API."""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from pathlib import Path

import pytest

from adapters.base import AudioChunk, TTSAdapter, TTSInput
from adapters.errors import BadCredentials, TTSError, UpstreamRejected
from dsp.wav import wav_file
from tests import piper_speech
from tests.audio_check import decode, pcm_stats
from tests.contract import make_adapter
from tests.coqui_server import CoquiTestServer
from tests.openai_server import OpenAITestServer
from tests.upstream_server import refused_url
from tests.xtts_server import XttsTestServer, latents_id

SENTENCE = "The quick brown fox jumps over the lazy dog, twice."


async def speak(adapter: TTSAdapter, text: str = SENTENCE, **kw: object) -> list[AudioChunk]:
    async with aclosing(adapter.synth_stream(TTSInput(text=text, **kw))) as chunks:  # type: ignore[arg-type]
        return [c async for c in chunks]


def seconds(chunks: list[AudioChunk]) -> float:
    return sum(c.samples / c.sample_rate_hz for c in chunks)


def clip(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.wav"
    path.write_bytes(wav_file(b"".join(piper_speech.sentences(text, 22_050)), 22_050))
    return path


# ------------------------------------------------------------------------------ openai_tts


async def test_openai_tts_forwards_voice_speed_and_key_and_lists_kokoro_voices() -> None:
    async with OpenAITestServer(api_key="sekrit") as srv:
        adapter = make_adapter("openai_tts", openai_tts_base_url=srv.url + "/v1",
                               openai_tts_api_key="sekrit", openai_tts_voice="am_adam",
                               openai_tts_model="kokoro")
        try:
            await adapter.warmup()
            assert [v.id for v in adapter.voices()] == ["af_bella", "am_adam"]
            assert adapter.default_voice() == "am_adam"
            normal = await speak(adapter)
            fast = await speak(adapter, voice="af_bella", speed=1.5)
        finally:
            await adapter.aclose()
    first, second = srv.audio_requests("/v1/audio/speech")
    assert first.body == {"model": "kokoro", "input": SENTENCE, "voice": "am_adam",
                          "response_format": "pcm", "speed": 1.0}
    assert second.body["voice"] == "af_bella" and second.body["speed"] == 1.5
    assert first.headers["authorization"] == "Bearer sekrit"
    assert {c.sample_rate_hz for c in normal} == {24_000}
    # The upstream applies the speed (Piper's length_scale, which leaves its pauses as they
    # are: 1.3-1.45x shorter here), and nothing stretches it again (that would be 2.25x).
    assert seconds(normal) / 1.6 < seconds(fast) < seconds(normal) / 1.2
    assert pcm_stats(b"".join(c.pcm for c in normal)).rms_dbfs > -35


async def test_openai_tts_decodes_mp3_when_the_upstream_refuses_pcm() -> None:
    async with OpenAITestServer(reject_pcm=True) as srv:
        adapter = make_adapter("openai_tts", openai_tts_base_url=srv.url + "/v1",
                               openai_tts_voice="af_bella")
        try:
            chunks = await speak(adapter)
            again = await speak(adapter)
        finally:
            await adapter.aclose()
    formats = [r.body["response_format"] for r in srv.audio_requests("/v1/audio/speech")]
    assert formats == ["pcm", "mp3", "mp3"]  # refused once, then remembered
    for got in (chunks, again):
        assert 2.0 < seconds(got) < 6.0 and got[-1].is_final
        assert pcm_stats(b"".join(c.pcm for c in got)).rms_dbfs > -35


async def test_openai_tts_wrong_key_says_so_and_is_never_logged(caplog: pytest.LogCaptureFixture
                                                                ) -> None:
    caplog.set_level(logging.DEBUG)
    async with OpenAITestServer(api_key="sekrit") as srv:
        adapter = make_adapter("openai_tts", openai_tts_base_url=srv.url + "/v1",
                               openai_tts_api_key="wrong-key-4711", openai_tts_voice="af_bella")
        try:
            health = await adapter.health()
            with pytest.raises(BadCredentials) as info:
                await speak(adapter)
        finally:
            await adapter.aclose()
    assert "API key" in str(info.value) and "401" in str(info.value)
    assert not health.ready and "401" in str(health.reason)
    assert "wrong-key-4711" not in caplog.text
    assert srv.requests[-1].headers["authorization"] == "Bearer wrong-key-4711"  # sent, once


async def test_network_adapters_without_a_url_say_which_setting_is_missing() -> None:
    for backend, setting in (("openai_tts", "OPENAI_TTS_BASE_URL"), ("xtts", "XTTS_URL"),
                             ("coqui", "COQUI_URL")):
        adapter = make_adapter(backend)
        health = await adapter.health()
        assert not health.ready and setting in str(health.reason)
        with pytest.raises(TTSError, match=setting):
            await adapter.warmup()


# ------------------------------------------------------------------------------ xtts


async def test_xtts_streaming_server_clones_each_clip_once_and_sends_its_latents(
        tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    narrator = clip(clips, "narrator", "A reference voice for cloning.")
    async with XttsTestServer(api="streaming-server") as srv:
        adapter = make_adapter("xtts", xtts_url=srv.url, xtts_speakers_dir=str(clips),
                               xtts_stream_chunk_size=15)
        try:
            await adapter.warmup()
            assert [v.id for v in adapter.voices()] == ["narrator", "Claribel Dervla",
                                                        "Daisy Studious"]
            assert len(srv.clones) == 1  # warmup cloned the default voice
            a = await speak(adapter, voice="narrator", language="de")
            await speak(adapter, voice="narrator")
            studio = await speak(adapter, voice="Daisy Studious")
            assert len(srv.clones) == 1  # cached
            await asyncio.sleep(0.01)
            clip(clips, "narrator", "Another clip under the same name.")
            narrator.touch()
            await speak(adapter, voice="narrator")
        finally:
            await adapter.aclose()
    streams = srv.audio_requests("/tts_stream")
    assert streams[0].body["speaker_embedding"] == srv.clones[0]
    assert streams[0].body["language"] == "de" and streams[1].body["language"] == "en"
    assert streams[0].body["stream_chunk_size"] == "15"  # a string, as the server declares it
    assert streams[0].body["add_wav_header"] is True and streams[0].body["text"] == SENTENCE
    daisy = latents_id(srv.studio["Daisy Studious"]["speaker_embedding"])
    assert streams[2].body["speaker_embedding"] == daisy
    assert len(srv.clones) == 2 and streams[3].body["speaker_embedding"] == srv.clones[1] \
        != srv.clones[0]  # a changed clip is cloned again
    for got, req in ((a, streams[0]), (studio, streams[2])):
        assert {c.sample_rate_hz for c in got} == {24_000}
        # the zero-frame header is not audio: exactly what the server sent as PCM arrives
        assert seconds(got) * 1000 == pytest.approx(req.audio_ms, abs=1)


async def test_xtts_api_server_gets_query_parameters_and_clip_paths(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    narrator = clip(clips, "narrator", "A reference voice for cloning.")
    async with XttsTestServer(api="api-server") as srv:
        adapter = make_adapter("xtts", xtts_url=srv.url, xtts_speakers_dir=str(clips))
        try:
            await adapter.warmup()
            assert {v.id for v in adapter.voices()} == {"narrator", "female_calm", "male_deep"}
            named = await speak(adapter, voice="male_deep", language="fr")
            cloned = await speak(adapter, voice="narrator")
        finally:
            await adapter.aclose()
    first, second = srv.audio_requests("/tts_stream")
    assert first.method == "GET" and first.body is None
    assert first.query == {"text": SENTENCE, "speaker_wav": "male_deep", "language": "fr"}
    assert second.query["speaker_wav"] == str(narrator.resolve())
    for got in (named, cloned):
        assert got[-1].is_final and pcm_stats(b"".join(c.pcm for c in got)).rms_dbfs > -35


async def test_xtts_detects_each_protocol_or_takes_it_from_the_setting() -> None:
    async with XttsTestServer(api="streaming-server") as s1, \
            XttsTestServer(api="api-server") as s2:
        both = make_adapter("xtts", xtts_url=f"{s1.url},{s2.url}")
        wrong = make_adapter("xtts", xtts_url=s1.url, xtts_api="api-server")
        try:
            await both.warmup()
            assert await both._api(s1.url) == "streaming-server"  # type: ignore[attr-defined]
            assert await both._api(s2.url) == "api-server"  # type: ignore[attr-defined]
            with pytest.raises(TTSError):
                await speak(wrong, voice="male_deep")
        finally:
            await both.aclose()
            await wrong.aclose()


async def test_xtts_unsupported_language_is_rejected_without_blaming_the_upstream() -> None:
    async with XttsTestServer(api="streaming-server") as srv:
        adapter = make_adapter("xtts", xtts_url=srv.url)
        try:
            await adapter.warmup()
            with pytest.raises(UpstreamRejected, match="422"):
                await speak(adapter, language="tlh")
            assert adapter.upstreams()[0]["state"] == "up"
            assert await speak(adapter)  # still served
        finally:
            await adapter.aclose()


# ------------------------------------------------------------------------------ coqui


async def test_coqui_sends_query_parameters_and_learns_speakers() -> None:
    async with CoquiTestServer(speakers=("p225", "p226"), languages=("en", "fr")) as srv:
        adapter = make_adapter("coqui", coqui_url=srv.url, coqui_languages="en,fr")
        try:
            await adapter.warmup()
            assert [v.id for v in adapter.voices()] == ["p225", "p226"]
            chunks = await speak(adapter, voice="p226", language="fr")
            await speak(adapter, language="de")  # not in COQUI_LANGUAGES: the server's default
        finally:
            await adapter.aclose()
    first, second = srv.audio_requests("/api/tts")
    assert first.query == {"text": SENTENCE, "speaker_id": "p226", "language_id": "fr"}
    assert first.method == "GET" and "content-type" not in first.headers  # no JSON body
    assert second.query == {"text": SENTENCE, "speaker_id": "p225"}
    assert {c.sample_rate_hz for c in chunks} == {piper_speech.piper_rate_hz()}
    assert seconds(chunks) * 1000 == pytest.approx(first.audio_ms, abs=1)


async def test_coqui_speakers_from_settings_and_single_speaker_models() -> None:
    async with CoquiTestServer(speakers=None) as srv:
        listed = make_adapter("coqui", coqui_url=srv.url)
        named = make_adapter("coqui", coqui_url=srv.url, coqui_speakers="alice,bob")
        try:
            await listed.warmup()
            await named.warmup()
            assert [v.id for v in listed.voices()] == ["vits"]  # /voices: the model's name
            assert [v.id for v in named.voices()] == ["alice", "bob"]
            assert await speak(named, voice="bob")  # ignored by a single-speaker model
        finally:
            await listed.aclose()
            await named.aclose()


# ------------------------------------------------------------------------------ through Morpheus


@pytest.mark.parametrize("fmt", ["pcm", "mp3"])
async def test_openai_tts_through_morpheus_to_a_second_morpheus(serve, fmt: str) -> None:
    upstream = await serve(tts_backend="piper")
    front = await serve(tts_backend="openai_tts", backends="openai_tts,espeak",
                        openai_tts_base_url=upstream.url + "/v1",
                        openai_tts_response_format=fmt)
    async with front.http.get(front.url + "/v1/audio/voices") as r:
        voices = await r.json()
    assert voices["voices"] == ["en_US-joe-medium"]  # the second Morpheus's own list
    async with front.http.post(front.url + "/v1/audio/speech", json={
            "input": SENTENCE, "response_format": "wav", "speed": 1.25}) as r:
        assert r.status == 200, await r.text()
        assert r.headers["X-Backend"] == "openai_tts" and r.headers["X-Degraded"] == "false"
        body = await r.read()
    audio = decode(body, "wav")
    assert audio.sample_rate_hz == 24_000 and 1.5 < audio.duration_s < 4.0
    assert audio.rms_dbfs > -35


async def test_xtts_and_coqui_through_morpheus(serve, tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clip(clips, "narrator", "A reference voice for cloning.")
    async with XttsTestServer() as xtts, CoquiTestServer() as coqui:
        srv = await serve(tts_backend="xtts", backends="xtts,coqui,espeak", xtts_url=xtts.url,
                          xtts_speakers_dir=str(clips), coqui_url=coqui.url)
        for backend, voice in (("xtts", "narrator"), ("coqui", "p226")):
            async with srv.http.post(srv.url + "/v1/audio/speech", json={
                    "input": SENTENCE, "voice": voice, "backend": backend,
                    "response_format": "pcm"}) as r:
                assert r.status == 200, await r.text()
                assert r.headers["X-Backend"] == backend and r.headers["X-Voice"] == voice
                pcm = await r.read()
            stats = pcm_stats(pcm)
            assert 2.0 < stats.duration_s < 6.0 and stats.rms_dbfs > -35
    assert coqui.audio_requests("/api/tts")[-1].query["speaker_id"] == "p226"
    assert xtts.audio_requests("/tts_stream")[-1].body["speaker_embedding"] == xtts.clones[0]


async def test_adapters_route_lists_each_upstream_and_masks_the_key(serve) -> None:
    async with XttsTestServer() as xtts:
        dead = refused_url()
        srv = await serve(tts_backend="xtts", backends="xtts,espeak,openai_tts",
                          xtts_url=f"{xtts.url},{dead}", openai_tts_api_key="sk-hidden-1",
                          openai_tts_base_url=refused_url() + "/v1")
        async with srv.http.get(srv.url + "/adapters") as r:
            rows = {row["name"]: row for row in (await r.json())["adapters"]}
        async with srv.http.get(srv.url + "/config") as r:
            config = await r.json()
    xtts_row = rows["xtts"]
    assert xtts_row["ready"] is True and dead in xtts_row["reason"]
    assert [u["address"] for u in xtts_row["upstreams"]] == [xtts.url, dead]
    assert rows["openai_tts"]["ready"] is False
    assert "connect" in rows["openai_tts"]["reason"].lower()
    assert config["openai_tts_api_key"] == "***"
    assert rows["coqui"]["enabled"] is False and rows["coqui"]["upstreams"] == []
