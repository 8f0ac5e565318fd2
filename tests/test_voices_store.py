"""The voice library's pieces on their own: names and ids, clip conversion (PyAV, any format),
the manifest (atomic, shared between stores), leases, the sweep, and restarts."""

from __future__ import annotations

import asyncio
import json
import os
import time
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from server.voices import clips, names
from server.voices.errors import ClipRejected, VoiceConflict, VoiceError
from server.voices.store import MANIFEST, StoredVoice, VoiceStore
from tests.audio_check import decode
from tests.live_server import live_server
from tests.voice_clips import add_clone, add_preset, library_files, piper_clip, piper_pcm

# ------------------------------------------------------------------------------ names

@pytest.mark.parametrize("name, voice_id", [
    ("Grandpa Joe", "grandpa-joe"), ("  Ünïcödé  Voice!! ", "unicode-voice"),
    ("snake_case_name", "snake-case-name"), ("2024 Recording", "2024-recording"),
    ("a" * 100, "a" * 48)])
def test_ids_come_from_names(name: str, voice_id: str) -> None:
    checked = names.check_name(name)
    assert names.voice_id_for(checked) == voice_id and names.is_voice_id(voice_id)


@pytest.mark.parametrize("bad", ["", " ", "../x", "x/y", "x\\y", ".x", "a..b", "a\x00b",
                                 "a\nb", "a\u202eb", "x" * 101])
def test_names_that_are_not_names_are_refused(bad: str) -> None:
    with pytest.raises(VoiceError) as e:
        names.check_name(bad)
    assert e.value.field == "name" and e.value.status == 400


@pytest.mark.parametrize("text", ["../a", "A", "a b", "a.b", "", "-a", "a" * 49, "a/b"])
def test_only_ids_are_ids(text: str) -> None:
    assert not names.is_voice_id(text)


def test_labels_and_file_names() -> None:
    assert names.check_labels({"accent": "british", "age": 40, "x": None}) == {
        "accent": "british", "age": "40"}
    for bad in ([1], {"k": [1]}, {str(i): "v" for i in range(17)}, {"k": "v" * 101}):
        with pytest.raises(VoiceError):
            names.check_labels(bad)
    assert names.display_file_name("../../etc/passwd") == "passwd"
    assert names.display_file_name("C:\\Users\\me\\take 1.wav") == "take 1.wav"
    assert names.display_file_name(None) == "clip"


# ------------------------------------------------------------------------------ clips

@pytest.mark.parametrize("fmt", ["wav", "mp3", "flac", "opus", "aac"])
def test_any_format_becomes_24k_mono_wav_of_the_same_length(tmp_path: Path, fmt: str) -> None:
    data = piper_clip(fmt)
    src, dst = tmp_path / f"in.{fmt}", tmp_path / "out.wav"
    src.write_bytes(data)
    info = clips.convert(src, dst, max_s=60)
    out = decode(dst.read_bytes())
    assert (out.sample_rate_hz, out.codec) == (24_000, "pcm_s16le")
    assert out.duration_s == pytest.approx(len(piper_pcm()) / 48_000, abs=0.12)
    assert info.duration_ms == pytest.approx(out.duration_s * 1000, abs=1)
    assert 0.5 * info.duration_ms < info.speech_ms <= info.duration_ms
    assert info.size_bytes == dst.stat().st_size


def test_stereo_44k_is_mixed_down_and_resampled(tmp_path: Path) -> None:
    rate = 44_100
    t = np.arange(rate * 2) / rate
    left = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    src = tmp_path / "stereo.wav"
    with wave.open(str(src), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.stack([left, left], axis=1).tobytes())
    info = clips.convert(src, tmp_path / "out.wav", max_s=60)
    with wave.open(str(tmp_path / "out.wav")) as w:
        assert (w.getnchannels(), w.getframerate()) == (1, 24_000)
        assert w.getnframes() == pytest.approx(48_000, abs=64)
    assert info.speech_ms == pytest.approx(2000, abs=40)


def test_a_long_file_stops_at_the_bound_without_decoding_it_all(tmp_path: Path) -> None:
    src = tmp_path / "long.flac"  # two minutes of tone: small as FLAC, 5.8 MB decoded
    with av.open(str(src), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=24_000, layout="mono")
        tone = 0.2 * np.sin(2 * np.pi * 200 * np.arange(24_000) / 24_000) * 32767
        second = tone.astype("<i2").reshape(1, -1)
        for i in range(120):
            frame = av.AudioFrame.from_ndarray(second, format="s16", layout="mono")
            frame.sample_rate, frame.pts = 24_000, i * 24_000
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    t0 = time.monotonic()
    with pytest.raises(ClipRejected) as e:
        clips.convert(src, tmp_path / "out.wav", max_s=5)
    assert e.value.status == 422 and "longer than 5 s" in str(e.value)
    assert (tmp_path / "out.wav").stat().st_size <= 5 * 48_000 + 48_000  # stopped early
    assert time.monotonic() - t0 < 10


def test_sound_is_told_from_silence_by_level(tmp_path: Path) -> None:
    rate = 24_000

    def wav(path: Path, x: np.ndarray) -> Path:
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes((x * 32767).astype("<i2").tobytes())
        return path

    rng = np.random.default_rng(1)
    hiss = 0.003 * rng.standard_normal(rate * 4)  # about -50 dBFS: room noise, not a voice
    with pytest.raises(ClipRejected, match="silent"):
        clips.convert(wav(tmp_path / "hiss.wav", hiss), tmp_path / "o.wav", max_s=60)
    blip = hiss.copy()
    blip[:rate // 2] += 0.3 * np.sin(np.arange(rate // 2) / 3)  # half a second of sound
    with pytest.raises(ClipRejected, match=r"only 0\.5 s of sound"):
        clips.convert(wav(tmp_path / "blip.wav", blip), tmp_path / "o.wav", max_s=60)


def test_join_puts_every_clip_in_one_reference(tmp_path: Path) -> None:
    parts = []
    for i, text in enumerate(["Here is the first clip of my voice.",
                              "And here is another one, a little longer."]):
        src = tmp_path / f"in{i}.wav"
        src.write_bytes(piper_clip("wav", text))
        clips.convert(src, tmp_path / f"c{i}.wav", max_s=60)
        parts.append(tmp_path / f"c{i}.wav")
    clips.join(parts, tmp_path / "ref.wav")
    frames = [wave.open(str(p)).getnframes() for p in parts]
    with wave.open(str(tmp_path / "ref.wav")) as w:
        assert w.getnframes() == sum(frames) + 24_000 * clips.JOIN_GAP_MS // 1000


# ------------------------------------------------------------------------------ the store

def preset(voice_id: str, name: str | None = None) -> StoredVoice:
    return StoredVoice(voice_id=voice_id, name=name or voice_id, kind="preset",
                       created_at=time.time(), backend="piper", speed=1.2)


async def test_the_manifest_is_replaced_whole_and_read_by_another_store(tmp_path: Path) -> None:
    a, b = VoiceStore(tmp_path), VoiceStore(tmp_path)  # two replicas sharing the folder
    await a.add(preset("one"), None)
    assert [v.voice_id for v in b.voices()] == ["one"]
    await b.add(preset("two"), None)
    await asyncio.sleep(0.01)
    assert {v.voice_id for v in a.voices()} == {"one", "two"}
    with pytest.raises(VoiceConflict):
        await a.add(preset("three", name="ONE"), None)  # names are unique, casefolded
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["format"] == 1 and [v["voice_id"] for v in manifest["voices"]] == [
        "one", "two"]
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []
    (tmp_path / MANIFEST).write_text("{broken")  # a bad edit by hand: the last good stays
    assert {v.voice_id for v in a.voices()} == {"one", "two"}


async def test_concurrent_adds_of_one_name_store_one(tmp_path: Path) -> None:
    store = VoiceStore(tmp_path)
    results = await asyncio.gather(*(store.add(preset("same"), None) for _ in range(5)),
                                   return_exceptions=True)
    assert sum(isinstance(r, StoredVoice) for r in results) == 1
    assert sum(isinstance(r, VoiceConflict) for r in results) == 4
    assert [v.voice_id for v in VoiceStore(tmp_path).voices()] == ["same"]


async def test_a_leased_folder_outlives_its_voice_and_the_sweep_takes_leftovers(
        tmp_path: Path) -> None:
    store = VoiceStore(tmp_path)
    staged = store.stage()
    (staged / "reference.wav").write_bytes(b"x")
    clone = StoredVoice(voice_id="c", name="c", kind="clone", created_at=0.0,
                        reference="reference.wav")
    stored = await store.add(clone, staged)
    assert stored.folder and (tmp_path / stored.folder / "reference.wav").exists()
    lease = store.lease(stored)
    await store.remove("c")
    assert (tmp_path / stored.folder).exists()  # a stream still speaks it
    lease.release()
    lease.release()  # a second release is no release
    for _ in range(100):
        if not (tmp_path / stored.folder).exists():
            break
        await asyncio.sleep(0.02)
    assert not (tmp_path / stored.folder).exists()
    # what a crash leaves: a placed folder the manifest never named, and an old upload
    (tmp_path / "v-lost-12345678").mkdir()
    old = tmp_path / ".upload-old"
    old.mkdir()
    young = store.stage()
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    (tmp_path / "mine").mkdir()  # not ours: never touched
    removed = store.sweep()
    assert sorted(removed) == [".upload-old", "v-lost-12345678"]
    assert young.exists() and (tmp_path / "mine").exists()


# ------------------------------------------------------------------------------ restarts

def test_a_restarted_server_keeps_its_library(tmp_path: Path) -> None:
    """Two processes, one after the other, on the same VOICES_DIR."""
    import httpx

    with live_server(tmp_path, tts_backend="synthetic") as srv:
        form = {"name": "Kept Clone"}
        files = {"files": ("kept.wav", piper_clip(), "audio/wav")}
        r = srv.http.post(srv.url + "/v1/audio/voices", data=form, files=files)
        assert r.status_code == 201, r.text
        r = srv.http.post(srv.url + "/v1/audio/voices", json={
            "name": "Kept Preset", "backend": "synthetic", "voice": "buzz", "speed": 2.0})
        assert r.status_code == 201, r.text
        before = srv.http.get(srv.url + "/v1/audio/voices/kept-clone").json()
    files_before = library_files(tmp_path / "voices")
    with live_server(tmp_path, tts_backend="synthetic") as srv:
        listed = srv.http.get(srv.url + "/v1/audio/voices").json()["voices"]
        assert listed[-2:] == ["kept-clone", "kept-preset"]
        assert srv.http.get(srv.url + "/v1/audio/voices/kept-clone").json() == before
        r = srv.http.post(srv.url + "/v1/audio/speech", json={
            "input": "Still here.", "voice": "kept-preset", "response_format": "pcm"})
        assert r.status_code == 200 and r.headers["X-Voice"] == "kept-preset"
        assert len(r.content) / 48_000 == pytest.approx(len("Still here.") * 0.06 / 2, abs=0.05)
        assert isinstance(httpx.get(srv.url + "/v1/voices").json()["voices"], list)
    assert library_files(tmp_path / "voices") == files_before


async def test_presets_and_clone_fields_are_checked(serve, tmp_path: Path) -> None:
    srv = await serve(tts_backend="synthetic")
    status, body = await add_preset(srv, name="Blend", backend="synthetic",
                                    voice="jf_alpha(2)+jm_kumo(1)")  # a Kokoro blend: a string
    assert status == 201 and body["preset"]["voice"] == "jf_alpha(2)+jm_kumo(1)"
    status, body = await add_preset(srv, name="Nested", backend="synthetic", voice="blend")
    assert status == 400 and body["field"] == "voice"  # a preset of a preset is refused
    status, body = await add_preset(srv, name="Nowhere", backend="no-such-engine")
    assert status == 400 and body["field"] == "backend"
    status, body = await add_preset(srv, name="Too Fast", backend="synthetic", speed=9)
    assert status == 400 and "speed" in body["field"]
    status, body = await add_clone(srv, "Labelled", labels='{"accent": "irish"}',
                                   description="a test", language="en-IE")
    assert status == 201 and body["labels"] == {"accent": "irish"}
    assert body["language"] == "en-IE" and body["description"] == "a test"
    status, body = await add_clone(srv, "Bad Labels", labels="[1, 2]")
    assert status == 400 and body["field"] == "labels"
    assert sorted(p for p in library_files(tmp_path / "voices") if "/" not in p) == [
        next(p for p in library_files(tmp_path / "voices") if p.startswith("v-labelled-")),
        "voices.json"]
