"""Cloning end to end: the official `elevenlabs` SDK adds a voice from a clip Piper spoke, and
Morpheus speaks with it through the XTTS protocol test server: the clip reaches the upstream's
clone route once, its latents ride every request, and a voice deleted mid-stream finishes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from elevenlabs.client import AsyncElevenLabs

from server.app_keys import VOICES
from tests.audio_check import decode, pcm_stats
from tests.voice_clips import CLIP_TEXT, add_clone, library_files, piper_clip
from tests.xtts_server import XttsTestServer, latents_for, latents_id

SENTENCE = "Good morning. The clone speaks this sentence through the XTTS server."


async def collect(agen) -> bytes:
    return b"".join([chunk async for chunk in agen])


async def test_elevenlabs_sdk_clones_a_piper_clip_and_xtts_speaks_it(serve, tmp_path: Path
                                                                      ) -> None:
    async with XttsTestServer(api="streaming-server") as xtts:
        srv = await serve(tts_backend="piper", backends="piper,espeak,xtts", xtts_url=xtts.url)
        client = AsyncElevenLabs(base_url=srv.url, api_key="any")
        clip = piper_clip("mp3")  # what people upload: a compressed file, decoded by PyAV
        added = await client.voices.ivc.create(
            name="Grandpa Joe", files=[("grandpa.mp3", clip, "audio/mpeg")],
            description="my grandfather reading", labels={"accent": "american"})
        assert added.voice_id == "grandpa-joe" and added.requires_verification is False

        voice = await client.voices.get(added.voice_id)
        assert voice.name == "Grandpa Joe" and voice.category == "cloned"
        assert voice.description == "my grandfather reading"
        assert voice.labels and voice.labels["accent"] == "american"
        assert voice.labels["backend"] == "xtts"  # the enabled engine that clones
        assert voice.samples and voice.samples[0].file_name == "grandpa.mp3"
        listed = (await client.voices.get_all()).voices
        assert [v.voice_id for v in listed][-1] == "grandpa-joe"
        page = await client.voices.search(search="grandpa")
        assert [v.voice_id for v in page.voices] == ["grandpa-joe"] and page.total_count == 1

        pcm = await collect(client.text_to_speech.convert(
            "grandpa-joe", text=SENTENCE, output_format="pcm_24000"))
        async with srv.http.post(srv.url + "/v1/audio/speech", json={
                "input": SENTENCE, "voice": "grandpa-joe", "stream": False}) as r:
            assert r.status == 200, await r.text()
            assert r.headers["X-Backend"] == "xtts" and r.headers["X-Voice"] == "grandpa-joe"
            assert "X-Voice-Fallback" not in r.headers
            wav = await r.read()

    # the stored reference is 24 kHz mono WAV of the clip, and exactly it reached the upstream
    stored = srv.app[VOICES].get("grandpa-joe")
    assert stored is not None and stored.clips[0].duration_ms > 3000
    reference = srv.app[VOICES].clip_path(stored, stored.reference or "").read_bytes()
    ref = decode(reference)
    assert ref.sample_rate_hz == 24_000 and ref.codec == "pcm_s16le"
    assert abs(ref.duration_s - decode(clip).duration_s) < 0.1
    cloned = xtts.audio_requests("/clone_speaker")
    assert len(cloned) == 1 and cloned[0].body["bytes"] == len(reference)  # once: cached
    assert xtts.clones == [latents_id(latents_for(reference)["speaker_embedding"])]
    spoken = xtts.audio_requests("/tts_stream")
    assert len(spoken) >= 2 and {r.body["speaker_embedding"] for r in spoken} == set(xtts.clones)
    for audio in (pcm_stats(pcm), decode(wav)):
        assert 2.0 < audio.duration_s < 8.0 and audio.rms_dbfs > -35


async def test_xtts_api_server_reads_the_stored_reference_by_path(serve) -> None:
    async with XttsTestServer(api="api-server") as xtts:
        srv = await serve(tts_backend="xtts", xtts_url=xtts.url, fallback_backend="")
        status, body = await add_clone(srv, "Narrator", language="fr")
        assert status == 201, body
        async with srv.http.post(srv.url + "/v1/audio/speech", json={
                "input": SENTENCE, "voice": "narrator", "response_format": "pcm"}) as r:
            assert r.status == 200, await r.text()
            pcm = await r.read()
    stored = srv.app[VOICES].get("narrator")
    assert stored is not None and stored.language == "fr"
    reference = str(srv.app[VOICES].clip_path(stored, "reference.wav"))
    for request in xtts.audio_requests("/tts_stream"):
        assert request.query["speaker_wav"] == reference
        assert request.query["language"] == "fr"  # the clone's, as the request named none
    assert pcm_stats(pcm).rms_dbfs > -35


async def test_engines_that_cannot_clone_say_which_can(serve) -> None:
    srv = await serve(tts_backend="piper")
    status, _ = await add_clone(srv, "Grandpa")
    assert status == 201
    for body in ({"input": "Hello.", "voice": "grandpa"},
                 {"input": "Hello.", "voice": "grandpa", "model": "piper"}):
        async with srv.http.post(srv.url + "/v1/audio/speech", json=body) as r:
            assert r.status == 400
            err = await r.json()
        assert err["field"] == "voice" and "clone" in err["error"]["message"]
        assert "xtts" in err["error"]["message"]  # the engines that can
    async with srv.http.post(srv.url + "/v1/text-to-speech/grandpa", json={"text": "Hi."}) as r:
        assert r.status == 422
        detail = (await r.json())["detail"][0]
    assert detail["loc"] == ["body", "voice"] and "xtts" in detail["msg"]


async def test_a_voice_deleted_while_speaking_lets_its_streams_finish(serve, tmp_path: Path
                                                                      ) -> None:
    async with XttsTestServer(api="streaming-server", rtf=1.0, chunk_ms=100) as xtts:
        srv = await serve(tts_backend="xtts", xtts_url=xtts.url, fallback_backend="")
        status, _ = await add_clone(srv, "Leaving")
        assert status == 201
        voices = tmp_path / "voices"
        folder = next(p for p in library_files(voices) if p.startswith("v-leaving-"))
        text = "First sentence of several. " + CLIP_TEXT
        async with srv.http.post(srv.url + "/v1/audio/speech", json={
                "input": text, "voice": "leaving", "response_format": "pcm"}) as r:
            assert r.status == 200
            first = await r.content.read(24_000)  # half a second in: it is speaking
            async with srv.http.delete(srv.url + "/v1/audio/voices/leaving") as d:
                assert d.status == 200
            assert (voices / folder).is_dir()  # held by the stream
            rest = await r.read()
        assert pcm_stats(first + rest).duration_s > 4.0  # every sentence was spoken
        for _ in range(100):  # removed once the stream let go of it (in a thread)
            if not (voices / folder).exists():
                break
            await asyncio.sleep(0.05)
        assert not (voices / folder).exists()
        assert library_files(voices) == ["voices.json"]
        async with srv.http.get(srv.url + "/v1/audio/voices/leaving") as r:
            assert r.status == 404


async def test_an_edit_that_adds_a_clip_clones_the_new_reference(serve) -> None:
    async with XttsTestServer(api="streaming-server") as xtts:
        srv = await serve(tts_backend="xtts", xtts_url=xtts.url, fallback_backend="")
        client = AsyncElevenLabs(base_url=srv.url, api_key="any")
        added = await client.voices.ivc.create(name="Two Takes",
                                               files=[("a.wav", piper_clip(), "audio/wav")])
        await collect(client.text_to_speech.convert(added.voice_id, text="One.",
                                                    output_format="pcm_24000"))
        await client.voices.update(added.voice_id, name="Two Takes", labels={"take": "2"},
                                   files=[("b.flac", piper_clip("flac", "A second take, read a little differently."),
                                           "audio/flac")])
        voice = await client.voices.get(added.voice_id)
        assert voice.samples and [s.file_name for s in voice.samples] == ["a.wav", "b.flac"]
        assert voice.labels and voice.labels["take"] == "2"
        await collect(client.text_to_speech.convert(added.voice_id, text="Two.",
                                                    output_format="pcm_24000"))
    assert len(xtts.clones) == 2 and xtts.clones[0] != xtts.clones[1]
    spoken = xtts.audio_requests("/tts_stream")
    assert [r.body["speaker_embedding"] for r in spoken] == xtts.clones
