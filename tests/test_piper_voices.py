"""Every Piper voice in PIPER_VOICES_DIR: its own rate and language, one voice per speaker of a
multi-speaker model (with `sid` really changing the audio), and a list that follows the folder
and POST /config."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from adapters.base import AudioChunk, TTSInput
from adapters.piper.adapter import PiperAdapter
from adapters.piper.voices import VoiceCatalog
from server.config import Settings
from tests.audio_check import pcm_stats
from tests.piper_test_voices import add_multi_speaker_voice, add_voice, multi_speaker_model

TEXT = "Hello there, how are you today?"


@pytest.fixture(scope="module")
def duo_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return multi_speaker_model(tmp_path_factory.mktemp("duo") / "duo.onnx")


@pytest.fixture
def voices_dir(tmp_path: Path, duo_model: Path) -> Path:
    folder = tmp_path / "voices"
    folder.mkdir()
    # joe's model without sampling noise, read at 22.05 and at 16 kHz: the same samples
    add_voice(folder, "en_US-still-medium", still=True)
    add_voice(folder, "en_US-still16k-medium", sample_rate_hz=16000, language="en_US",
              espeak_voice="en-us", still=True)
    add_voice(folder, "de_DE-joe-medium", sample_rate_hz=24000, language="de_DE",
              espeak_voice="de")
    os.link(duo_model, folder / "duo.onnx")
    add_multi_speaker_voice(folder, "en_US-duo-medium", folder / "duo.onnx")
    return folder


async def speak(adapter: PiperAdapter, voice: str, text: str = TEXT) -> list[AudioChunk]:
    chunks = [c async for c in adapter.synth_stream(TTSInput(text, voice=voice))]
    assert sum(c.is_final for c in chunks) == 1
    return chunks


def rms(chunks: list[AudioChunk]) -> float:
    x = np.frombuffer(b"".join(c.pcm for c in chunks), "<i2").astype(np.float64)
    return float(np.sqrt(np.mean(x**2)))


def test_catalog_reads_rate_language_and_speakers(voices_dir: Path) -> None:
    catalog = VoiceCatalog(voices_dir=str(voices_dir))
    entries = catalog.entries()
    assert {e: (v.sample_rate_hz, v.language, v.speaker_id) for e, v in entries.items()} == {
        "en_US-joe-medium": (22050, "en-US", None),  # the bundled voice comes first
        "de_DE-joe-medium": (24000, "de-DE", None),
        "en_US-still16k-medium": (16000, "en-US", None),
        "en_US-still-medium": (22050, "en-US", None),
        "en_US-duo-medium:alto": (22050, "en-US", 0),
        "en_US-duo-medium:whisper": (22050, "en-US", 1),
    }
    alias = catalog.get("en_US-duo-medium")  # the bare name speaks with the first speaker
    assert alias is not None and alias.id == "en_US-duo-medium:alto"
    (voices_dir / "broken.onnx").write_bytes(b"x")  # no config beside it
    assert "broken" not in catalog.entries()
    assert any("broken.onnx" in p for p in catalog.problems)


async def test_each_voice_speaks_at_its_own_rate_and_language(voices_dir: Path) -> None:
    adapter = PiperAdapter.from_options(Settings(piper_voices_dir=str(voices_dir)).model_dump())
    assert {v.id: v.language for v in adapter.voices()}["de_DE-joe-medium"] == "de-DE"
    assert set(adapter.languages()) == {"de", "en"}
    pcm = {}
    for voice, rate in [("en_US-still-medium", 22050), ("en_US-still16k-medium", 16000),
                        ("de_DE-joe-medium", 24000)]:
        chunks = await speak(adapter, voice)
        assert {c.sample_rate_hz for c in chunks} == {rate}
        pcm[voice] = b"".join(c.pcm for c in chunks)
        assert pcm_stats(pcm[voice], rate).rms_dbfs > -35
    # the same noiseless model: the same samples, labelled with each config's own rate
    assert pcm["en_US-still16k-medium"] == pcm["en_US-still-medium"]
    # each voice phonemizes with its own espeak voice: German "zwei" is not English "zwei"
    de = adapter._load("de_DE-joe-medium").voice
    en = adapter._load("en_US-joe-medium").voice
    assert de.phonemize("zwei") != en.phonemize("zwei")


async def test_multi_speaker_voice_passes_sid_and_speakers_differ(voices_dir: Path) -> None:
    adapter = PiperAdapter.from_options(Settings(piper_voices_dir=str(voices_dir)).model_dump())
    ids = [v.id for v in adapter.voices()]
    assert "en_US-duo-medium:alto" in ids and "en_US-duo-medium:whisper" in ids
    alto = await speak(adapter, "en_US-duo-medium:alto")
    whisper = await speak(adapter, "en_US-duo-medium:whisper")
    # the model scales speaker 1 by 0.25: the sid reached it
    assert rms(whisper) / rms(alto) == pytest.approx(0.25, rel=0.02)
    assert sum(len(c.pcm) for c in alto) == sum(len(c.pcm) for c in whisper)


async def test_a_voice_dropped_in_is_listed_without_a_restart(voices_dir: Path) -> None:
    adapter = PiperAdapter.from_options(Settings(piper_voices_dir=str(voices_dir)).model_dump())
    assert "fr_FR-joe-medium" not in {v.id for v in adapter.voices()}
    add_voice(voices_dir, "fr_FR-joe-medium", language="fr_FR", espeak_voice="fr")
    assert {v.id: v.language for v in adapter.voices()}["fr_FR-joe-medium"] == "fr-FR"
    assert {c.sample_rate_hz for c in await speak(adapter, "fr_FR-joe-medium")} == {22050}
    (voices_dir / "fr_FR-joe-medium.onnx").unlink()
    assert "fr_FR-joe-medium" not in {v.id for v in adapter.voices()}


async def test_voices_over_http_and_post_config_switches_the_folder(serve, voices_dir, tmp_path):
    # MODELS_DIR: where POST /config may point path settings (ignored before the hardening)
    srv = await serve(tts_backend="piper", piper_voices_dir=str(voices_dir),
                      models_dir=str(tmp_path),
                      stall_timeout_ms=60_000)  # loading a new voice on a busy machine: seconds

    async def voices() -> dict[str, str]:
        async with srv.http.get(srv.url + "/v1/audio/voices") as r:
            assert r.status == 200
            body = await r.json()
        return {d["id"]: d["language"] for d in body["voice_details"]}

    async def speak_http(voice: str) -> tuple[float, str]:
        async with srv.http.post(srv.url + "/v1/audio/speech", json={
                "input": TEXT, "voice": voice, "response_format": "pcm"}) as r:
            assert r.status == 200, await r.text()
            return pcm_stats(await r.read()).duration_s, r.headers["X-Voice"]

    listed = await voices()
    assert listed["en_US-still16k-medium"] == "en-US" and listed["de_DE-joe-medium"] == "de-DE"
    assert "en_US-duo-medium:whisper" in listed
    still_s, _ = await speak_http("en_US-still-medium")
    slow_s, voice = await speak_http("en_US-still16k-medium")
    assert voice == "en_US-still16k-medium"
    # the same samples resampled from the voice's own 16 kHz: longer by the rate ratio (the
    # pipeline's crossfades shorten both by the same few ms)
    assert slow_s / still_s == pytest.approx(22050 / 16000, rel=0.02)

    other = tmp_path / "other"
    other.mkdir()
    add_voice(other, "it_IT-joe-medium", language="it_IT", espeak_voice="it")
    async with srv.http.post(srv.url + "/config", json={"PIPER_VOICES_DIR": str(other)}) as r:
        assert r.status == 200
    listed = await voices()
    assert "it_IT-joe-medium" in listed and "en_US-still16k-medium" not in listed
    add_voice(other, "es_ES-joe-medium", language="es_ES", espeak_voice="es")
    assert "es_ES-joe-medium" in await voices()  # the folder's contents, without a POST
    _, voice = await speak_http("es_ES-joe-medium")
    assert voice == "es_ES-joe-medium"
