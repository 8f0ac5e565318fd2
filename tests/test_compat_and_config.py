"""Orpheus-FastAPI's README cURL commands unchanged, hot backend swap and .env hot reload."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from server.config import ConfigSource, build_settings
from tests.audio_check import decode
from tests.conftest import running_server

# Verbatim from Orpheus-FastAPI's README (reference/orpheus.md section 1).
CURL_SPEECH = """curl http://localhost:5005/v1/audio/speech \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "orpheus",
    "input": "Hello world! This is a test of the Orpheus TTS system.",
    "voice": "tara",
    "response_format": "wav",
    "speed": 1.0
  }' \\
  --output speech.wav"""

CURL_SPEAK = """curl -X POST http://localhost:5005/speak \\
  -H "Content-Type: application/json" \\
  -d '{
    "text": "Hello world! This is a test.",
    "voice": "tara"
  }' \\
  -o output.wav"""

CURL_OPENWEBUI = """curl http://localhost:5005/v1/audio/speech -H "Content-Type: application/json" -d '{"model":"tts-1","input":"Hello, this is a test.","voice":"tara"}' --output owui.wav"""


def on_port(cmd: str, port: int) -> str:
    """The command with the server's port in place of 5005, and nothing else changed."""
    assert cmd.count("localhost:5005") == 1, cmd
    moved = cmd.replace("localhost:5005", f"localhost:{port}")
    assert moved.replace(f"localhost:{port}", "localhost:5005") == cmd
    return moved


async def run_shell(cmd: str, cwd) -> int:
    proc = await asyncio.create_subprocess_shell(cmd, cwd=cwd)
    try:
        return await asyncio.wait_for(proc.wait(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_orpheus_readme_curl_commands_work_unchanged(tmp_path, serve):
    # Unchanged but for the port: the server listens where the OS let it, not on 5005 (a
    # port this machine may be using), and each command is pointed there.
    srv = await serve(tts_backend="piper", outputs_dir=tmp_path / "outputs")
    assert await run_shell(on_port(CURL_SPEECH, srv.port), tmp_path) == 0
    speech = decode((tmp_path / "speech.wav").read_bytes())
    assert 2.5 < speech.duration_s < 6 and speech.rms_dbfs > -35

    assert await run_shell(on_port(CURL_SPEAK, srv.port), tmp_path) == 0
    # As with Orpheus-FastAPI, /speak answers JSON that points at the file (its README's
    # "-o output.wav" saves that JSON); the audio is served under /outputs/.
    body = json.loads((tmp_path / "output.wav").read_text())
    assert body["status"] == "ok" and body["voice"] == "tara"
    assert await run_shell(f"curl -sf {srv.url}/{body['output_file']} -o got.wav",
                           tmp_path) == 0
    assert decode((tmp_path / "got.wav").read_bytes()).duration_s > 1.0

    assert await run_shell(on_port(CURL_OPENWEBUI, srv.port), tmp_path) == 0
    assert decode((tmp_path / "owui.wav").read_bytes()).duration_s > 1.0


async def test_hot_swap_keeps_running_streams_on_their_backend(serve):
    srv = await serve(tts_backend="synthetic", synthetic_rtf=4.0)
    long = {"input": "A sentence that takes a while. " * 6, "response_format": "pcm"}
    async with srv.http.post(srv.url + "/v1/audio/speech", json=long) as running:
        assert running.headers["X-Backend"] == "synthetic"
        await running.content.read(9600)
        async with srv.http.post(srv.url + "/config", json={"tts_backend": "espeak"}) as r:
            assert r.status == 200 and (await r.json())["config"]["tts_backend"] == "espeak"
        async with srv.http.post(srv.url + "/v1/audio/speech", json={"input": "Now espeak."}) as r:
            assert r.status == 200 and r.headers["X-Backend"] == "espeak"
            await r.read()
        rest = await running.read()  # the old stream finishes on the backend it started with
    assert len(rest) > 24000 * 2 * 5
    async with srv.http.get(srv.url + "/config") as r:
        assert (await r.json())["tts_backend"] == "espeak"


@pytest.mark.parametrize("body,field", [
    ({"tts_backend": "nope"}, "tts_backend"),
    ({"playback_buffer_ms": "lots"}, "playback_buffer_ms"),
    ({"parallel_streams": 0}, "parallel_streams"),
])
async def test_config_rejects_bad_values(serve, body, field):
    srv = await serve(tts_backend="synthetic")
    async with srv.http.post(srv.url + "/config", json=body) as r:
        assert r.status == 400
        assert (await r.json())["field"] == field
    async with srv.http.get(srv.url + "/config") as r:
        assert (await r.json())["tts_backend"] == "synthetic"


async def test_config_reports_unknown_keys(serve):
    srv = await serve(tts_backend="synthetic")
    async with srv.http.post(srv.url + "/config", json={"no_such_key": 1, "TTS_BACKEND": "espeak"}) as r:
        body = await r.json()
    assert r.status == 200 and body["unknown_keys"] == ["no_such_key"]
    assert body["config"]["tts_backend"] == "espeak"


async def test_env_file_edit_takes_effect_without_restart(tmp_path, caplog):
    env = tmp_path / ".env"
    env.write_text("TTS_BACKEND=synthetic\nNOT_A_SETTING=1\n")
    settings = build_settings(ConfigSource(env_file=env), environ={})
    assert settings.tts_backend == "synthetic"
    async with running_server(settings, env_file=env) as srv:
        async with srv.http.post(srv.url + "/v1/audio/speech", json={"input": "One."}) as r:
            assert r.headers["X-Backend"] == "synthetic"
        env.write_text("TTS_BACKEND=espeak\n")
        os.utime(env, (1e9 + 100, 1e9 + 100))  # a distinct mtime even on coarse filesystems
        for _ in range(100):  # the watcher polls every 0.5 s
            await asyncio.sleep(0.1)
            async with srv.http.get(srv.url + "/config") as r:
                if (await r.json())["tts_backend"] == "espeak":
                    break
        async with srv.http.post(srv.url + "/v1/audio/speech", json={"input": "Two."}) as r:
            assert r.headers["X-Backend"] == "espeak"
        env.write_text("PLAYBACK_BUFFER_MS=not-a-number\n")  # a bad edit keeps the last good one
        os.utime(env, (1e9 + 200, 1e9 + 200))
        for _ in range(100):  # until the watcher (every 0.5 s) has read it
            if "keeping the last good settings" in caplog.text:
                break
            await asyncio.sleep(0.1)
        assert "keeping the last good settings" in caplog.text
        async with srv.http.get(srv.url + "/config") as r:
            assert (await r.json())["tts_backend"] == "espeak"


def test_layering_defaults_env_file_environment(tmp_path):
    env = tmp_path / ".env"
    env.write_text("TTS_BACKEND=espeak\nPLAYBACK_BUFFER_MS=350\n")
    s = build_settings(ConfigSource(env_file=env), environ={"TTS_BACKEND": "synthetic"})
    assert s.tts_backend == "synthetic" and s.playback_buffer_ms == 350
    s = build_settings(ConfigSource(env_file=env, overrides={"tts_backend": "piper"}),
                       environ={"TTS_BACKEND": "synthetic"})
    assert s.tts_backend == "piper"
