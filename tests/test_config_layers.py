"""Settings layers survive reloads: command-line flags are kept when .env changes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from server.config import ConfigSource, Settings, build_settings
from server.settings_store import SettingsStore
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_flags_sit_above_env_and_environment_and_below_posted_config(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("TTS_BACKEND=synthetic\nPLAYBACK_BUFFER_MS=250\n")
    source = ConfigSource(env_file=env, flags={"tts_backend": "espeak"})
    assert build_settings(source, environ={"TTS_BACKEND": "piper"}).tts_backend == "espeak"
    source.overrides = {"tts_backend": "piper"}
    assert build_settings(source, environ={}).tts_backend == "piper"


def test_an_env_reload_keeps_the_flags(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("TTS_BACKEND=synthetic\n")
    flags = {"tts_backend": "espeak"}
    settings = build_settings(ConfigSource(env_file=env, flags=flags), environ={})
    store = SettingsStore(settings, env_file=env, environ={}, flags=flags)
    env.write_text("TTS_BACKEND=synthetic\nPLAYBACK_BUFFER_MS=250\n")
    os.utime(env, (time.time() + 5, time.time() + 5))
    assert store.reload_if_changed()
    assert store.current.playback_buffer_ms == 250  # the edit took effect
    assert store.current.tts_backend == "espeak"  # and the flag stayed


async def test_morpheus_serve_backend_flag_survives_an_env_edit(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("LOG_LEVEL=WARNING\n")
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if k.upper() != "TTS_BACKEND"}
    environ.update(PYTHONPATH=str(ROOT), WEBRTC_HOST_ADDRESSES="127.0.0.1",
                   OUTPUTS_DIR=str(tmp_path / "out"))
    proc = subprocess.Popen(  # noqa: ASYNC220 (returns at once)
        [sys.executable, "-m", "server.cli", "--env-file", str(env), "serve",
         "--host", "127.0.0.1", "--port", str(port), "--backend", "espeak"],
        cwd=tmp_path, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(url + "/config") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            async with http.get(url + "/config") as r:
                assert (await r.json())["tts_backend"] == "espeak"
            env.write_text("LOG_LEVEL=WARNING\nPLAYBACK_BUFFER_MS=250\n")
            for _ in range(100):  # the watcher polls every 0.5 s
                async with http.get(url + "/config") as r:
                    cfg = await r.json()
                if cfg["playback_buffer_ms"] == 250:
                    break
                await asyncio.sleep(0.1)
            assert cfg["playback_buffer_ms"] == 250, "the .env edit was not picked up"
            assert cfg["tts_backend"] == "espeak", "the --backend flag was lost on reload"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_settings_default_backend_is_not_the_flag() -> None:
    assert Settings().tts_backend == "piper"  # so the subprocess test above means something
