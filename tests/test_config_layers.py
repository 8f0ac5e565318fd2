"""Settings layers survive reloads: command-line flags are kept when .env changes."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiohttp

from server.config import ConfigSource, Settings, build_settings
from server.settings_store import SettingsStore
from tests.live_server import live_server


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
    with live_server(tmp_path, env_file=env, args=["--backend", "espeak"]) as srv:
        async with aiohttp.ClientSession() as http:
            async with http.get(srv.url + "/config") as r:
                assert (await r.json())["tts_backend"] == "espeak"
            env.write_text("LOG_LEVEL=WARNING\nPLAYBACK_BUFFER_MS=250\n")
            for _ in range(100):  # the watcher polls every 0.5 s
                async with http.get(srv.url + "/config") as r:
                    cfg = await r.json()
                if cfg["playback_buffer_ms"] == 250:
                    break
                await asyncio.sleep(0.1)
            assert cfg["playback_buffer_ms"] == 250, "the .env edit was not picked up"
            assert cfg["tts_backend"] == "espeak", "the --backend flag was lost on reload"


def test_settings_default_backend_is_not_the_flag() -> None:
    assert Settings().tts_backend == "piper"  # so the subprocess test above means something
