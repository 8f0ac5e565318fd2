"""Every bad upload gets a clear 4xx naming what is wrong, and leaves the library as it was:
wrong type, damaged, too long, too large, too many, silence, path tricks in names and ids,
and two uploads of one name at once. Writes from another machine need the API key."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request
from elevenlabs.client import AsyncElevenLabs
from elevenlabs.core.api_error import ApiError
from elevenlabs.errors import UnprocessableEntityError

from server.app import create_app
from server.config import Settings
from server.faces.elevenlabs.voices import add_voice as elevenlabs_add
from server.faces.openai.voices import add_voice, delete_voice
from tests.voice_clips import add_clone, clip_form, library_files, piper_clip, silence_wav


@pytest.fixture
async def library(serve, tmp_path: Path) -> tuple[Any, Path, list[str]]:
    """A server whose library holds one good clone, and what is on disk for it."""
    srv = await serve(tts_backend="synthetic", voice_max_clip_s=12, voice_max_file_mb=1,
                      voice_max_files=2)
    status, body = await add_clone(srv, "Keeper")
    assert status == 201, body
    root = tmp_path / "voices"
    return srv, root, library_files(root)


def damaged_mp3() -> bytes:
    """An MP3 whose frames after the first few are noise: FFmpeg opens it, then fails."""
    data = bytearray(piper_clip("mp3"))
    rng = random.Random(7)
    for i in range(600, len(data)):
        data[i] = rng.randrange(256)
    return bytes(data)


BAD_FILES = [
    # (what, file, status, words the message must hold)
    ("text", ("notes.txt", b"hello, this is not audio\n" * 40, "text/plain"), 415,
     "not an audio file"),
    ("playlist", ("list.m3u8", b"#EXTM3U\n#EXTINF:10,\nfile:///etc/passwd\n", "audio/x-mpegurl"),
     415, "not an audio file"),
    ("image", ("photo.wav", bytes.fromhex("89504e470d0a1a0a") + bytes(200), "audio/wav"), 415,
     "not an audio file"),
    ("silence", ("quiet.wav", silence_wav(4.0), "audio/wav"), 422, "silent"),
    ("too long", ("long.wav", silence_wav(13.0), "audio/wav"), 422, "longer than 12 s"),
    ("too large", ("big.wav", bytes(1_000_001), "audio/wav"), 413, "over 1 MB"),
    ("empty", ("none.wav", b"", "audio/wav"), 422, "empty"),
]


@pytest.mark.parametrize("what, upload, status, words", BAD_FILES, ids=[b[0] for b in BAD_FILES])
async def test_bad_files_are_refused_with_the_reason(library, what: str, upload: tuple,
                                                     status: int, words: str) -> None:
    srv, root, before = library
    got, body = await add_clone(srv, f"Bad {what}", upload)
    assert got == status, body
    message = body["error"]["message"]
    assert words in message and upload[0] in message and body["field"] == "files"
    assert library_files(root) == before  # nothing staged is left, nothing stored


async def test_a_damaged_file_is_refused_as_damaged(library) -> None:
    srv, root, before = library
    got, body = await add_clone(srv, "Damaged", ("bad.mp3", damaged_mp3(), "audio/mpeg"))
    assert got in (415, 422), body  # FFmpeg refuses to open it, or to decode it
    message = body["error"]["message"]
    assert "damaged" in message or "not an audio file" in message or "sound" in message
    assert library_files(root) == before


async def test_too_many_files_and_no_files(library) -> None:
    srv, root, before = library
    clip = ("a.wav", piper_clip(), "audio/wav")
    got, body = await add_clone(srv, "Three", clip, clip, clip)
    assert got == 413 and "at most 2 clips" in body["error"]["message"]
    async with srv.http.post(f"{srv.url}/v1/audio/voices", data=clip_form("Nothing")) as r:
        assert r.status == 400 and "no files" in (await r.json())["error"]["message"]
    form = clip_form(None, clip)
    async with srv.http.post(f"{srv.url}/v1/audio/voices", data=form) as r:
        assert r.status == 400 and (await r.json())["field"] == "name"
    assert library_files(root) == before


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b", "back\\slash", "..", ".hidden",
                                  "tab\there", "x" * 101, "   "])
async def test_names_that_try_paths_or_carry_control_characters_are_refused(
        library, name: str) -> None:
    srv, root, before = library
    got, body = await add_clone(srv, name)
    assert got == 400 and body["field"] == "name", body
    got, body = await add_clone_preset(srv, name)
    assert got == 400 and body["field"] == "name", body
    assert library_files(root) == before


async def add_clone_preset(srv: Any, name: str) -> tuple[int, dict[str, Any]]:
    async with srv.http.post(f"{srv.url}/v1/audio/voices",
                             json={"name": name, "backend": "synthetic"}) as r:
        return r.status, await r.json()


@pytest.mark.parametrize("voice_id", ["..%2F..%2Fetc", "%2E%2E", "keeper%00", "KEEPER",
                                      "v-keeper", "voices.json"])
async def test_ids_that_are_not_ids_find_nothing(library, voice_id: str) -> None:
    srv, root, before = library
    for method in ("GET", "DELETE"):
        for base in ("/v1/audio/voices/", "/v1/voices/"):
            async with srv.http.request(method, srv.url + base + voice_id) as r:
                assert r.status == 404, (method, base, voice_id)
    assert library_files(root) == before


async def test_names_are_unique_and_sanitized_into_ids(library) -> None:
    srv, root, before = library
    got, body = await add_clone(srv, "KEEPER")  # the same name, another case
    assert got == 409 and "Keeper" in body["error"]["message"]
    got, body = await add_clone(srv, "Café Crème — 2")
    assert got == 201 and body["voice_id"] == "cafe-creme-2" and body["name"] == "Café Crème — 2"
    got, body = await add_clone(srv, "声")
    assert got == 201 and body["voice_id"].startswith("voice-")


async def test_two_uploads_of_one_name_at_once_one_wins_the_other_gets_409(library) -> None:
    srv, root, before = library
    clip = piper_clip()

    async def upload() -> tuple[int, dict[str, Any]]:
        async with srv.http.post(f"{srv.url}/v1/audio/voices", data=clip_form(
                "Twin", ("t.wav", clip, "audio/wav"))) as r:
            return r.status, await r.json()

    results = await asyncio.gather(*(upload() for _ in range(4)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [201, 409, 409, 409], results
    for status, body in results:
        if status == 409:
            assert "Twin" in body["error"]["message"] and body["field"] == "name"
    async with srv.http.get(f"{srv.url}/v1/audio/voices") as r:
        ids = (await r.json())["voices"]
    assert ids.count("twin") == 1
    after = library_files(root)
    assert [p for p in after if p.startswith(".upload-")] == []
    assert len([p for p in after if p.startswith("v-twin-") and "/" not in p]) == 1


async def test_elevenlabs_sdk_errors_carry_the_reason(library) -> None:
    srv, root, before = library
    c = AsyncElevenLabs(base_url=srv.url, api_key="k")
    with pytest.raises(ApiError) as e:
        await c.voices.ivc.create(name="Text", files=[("a.txt", b"not audio at all" * 9,
                                                       "text/plain")])
    assert e.value.status_code == 415 and "not an audio file" in json.dumps(e.value.body)
    with pytest.raises(UnprocessableEntityError) as e:
        await c.voices.ivc.create(name="Quiet", files=[("q.wav", silence_wav(), "audio/wav")])
    assert "silent" in json.dumps(e.value.body)
    with pytest.raises(UnprocessableEntityError) as e:
        await c.voices.ivc.create(name="../up", files=[("a.wav", piper_clip(), "audio/wav")])
    assert e.value.body["detail"][0]["loc"] == ["body", "name"]
    with pytest.raises(ApiError) as e:
        await c.voices.ivc.create(name="Keeper", files=[("a.wav", piper_clip(), "audio/wav")])
    # 400, not 409: the SDK retries a 409 and drops the form on the retry
    assert e.value.status_code == 400 and e.value.body["detail"]["status"] \
        == "voice_already_exists" and "Keeper" in e.value.body["detail"]["message"]
    with pytest.raises(ApiError) as e:
        await c.voices.get("nobody")
    assert e.value.status_code == 404 and e.value.body["detail"]["status"] == "voice_not_found"
    with pytest.raises(ApiError) as e:
        await c.voices.delete("nobody")
    assert e.value.status_code == 404
    assert library_files(root) == before


async def test_a_multipart_body_that_is_not_one_is_refused(library) -> None:
    srv, root, before = library
    headers = {"Content-Type": "multipart/form-data; boundary=xyz"}
    async with srv.http.post(f"{srv.url}/v1/audio/voices", data=b"--xyz\r\nbroken",
                             headers=headers) as r:
        assert r.status == 400, await r.text()
    async with srv.http.post(f"{srv.url}/v1/audio/voices", data=b"name=x",
                             headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
        assert r.status == 415
    assert library_files(root) == before


async def test_writes_need_the_key_when_one_is_set(serve, tmp_path: Path) -> None:
    srv = await serve(tts_backend="synthetic", api_key="sekrit")
    form = clip_form("Locked", ("a.wav", piper_clip(), "audio/wav"))
    async with srv.http.post(f"{srv.url}/v1/audio/voices", data=form) as r:
        assert r.status == 401
    async with srv.http.post(f"{srv.url}/v1/voices/add", data=clip_form(
            "Locked", ("a.wav", piper_clip(), "audio/wav"))) as r:
        assert r.status == 401
    async with srv.http.post(f"{srv.url}/v1/voices/add", headers={"xi-api-key": "sekrit"},
                             data=clip_form("Locked", ("a.wav", piper_clip(), "audio/wav"))) as r:
        assert r.status == 200 and (await r.json())["voice_id"] == "locked"
    async with srv.http.delete(f"{srv.url}/v1/audio/voices/locked") as r:
        assert r.status == 401
    async with srv.http.delete(f"{srv.url}/v1/audio/voices/locked",
                               headers={"Authorization": "Bearer sekrit"}) as r:
        assert r.status == 200


def _from(app: Any, method: str, path: str, remote: str, **match: str) -> Any:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda key, default=None: (
        (remote, 40000) if key == "peername" else default)
    headers = {"Content-Type": "application/json", "Host": "203.0.113.5:5005"}
    req = make_mocked_request(method, path, app=app, transport=transport, headers=headers,
                              match_info=match)
    return req


@pytest.mark.parametrize("remote, status", [("198.51.100.7", 403), ("10.0.0.8", 403)])
async def test_writes_from_another_machine_without_a_key_are_refused(
        tmp_path: Path, remote: str, status: int) -> None:
    app = create_app(Settings(tts_backend="synthetic", voices_dir=tmp_path / "v",
                              outputs_dir=tmp_path / "o"), warm=False)
    for handler, method, path, match in (
            (add_voice, "POST", "/v1/audio/voices", {}),
            (delete_voice, "DELETE", "/v1/audio/voices/x", {"voice_id": "x"}),
            (elevenlabs_add, "POST", "/v1/voices/add", {})):
        resp = await handler(_from(app, method, path, remote, **match))
        assert resp.status == status
        assert "API_KEY" in resp.text
    assert not (tmp_path / "v").exists()


async def test_an_upload_is_streamed_not_read_whole(library, monkeypatch) -> None:
    """Files reach the disk in pieces of at most 64 KiB as they arrive."""
    srv, root, before = library
    from server.voices import uploads

    sizes: list[int] = []
    real = aiohttp.BodyPartReader.read_chunk

    async def spy(self: Any, size: int = uploads.PIECE_BYTES) -> bytes:
        piece = await real(self, size)
        sizes.append(len(piece))
        return piece

    monkeypatch.setattr(aiohttp.BodyPartReader, "read_chunk", spy)
    clip = piper_clip()
    got, body = await add_clone(srv, "Streamed", ("s.wav", clip, "audio/wav"))
    assert got == 201, body
    assert max(sizes) <= uploads.PIECE_BYTES and sum(sizes) >= len(clip)
