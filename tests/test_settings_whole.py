"""Settings that cannot half-work: the active and fallback backends are enabled by being named,
and settings that could not work are refused as a whole at start-up, on .env reload and on
POST /config, with a message naming the settings."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server import cli
from server.config import ConfigSource, Settings, ValidationError, build_settings, field_names
from server.settings_store import SettingsStore
from tests.audio_check import decode
from tests.conftest import running_server

ROOT = Path(__file__).resolve().parent.parent
# What each backend cannot work without, written out here (not read from the registry), so a
# requirement dropped from adapters/registry.py fails this test.
NEEDS = {
    "openai_tts": ["OPENAI_TTS_BASE_URL"],
    "xtts": ["XTTS_URL"],
    "coqui": ["COQUI_URL"],
    "wyoming": ["WYOMING_TTS_URI"],
    "command": ["COMMAND_TTS"],
    "elevenlabs": ["ELEVENLABS_API_KEY", "ELEVENLABS_BASE_URL"],  # the public API needs a key
}
KNOWN = ["piper", "espeak", "synthetic", "snac_llamacpp", "wyoming", "command", "elevenlabs",
         "openai_tts", "xtts", "coqui"]
HALF_WORKING: list[tuple[dict[str, str], list[str]]] = [
    *(({role: name}, [f"{role}={name}", *needs])
      for role in ("TTS_BACKEND", "FALLBACK_BACKEND") for name, needs in NEEDS.items()),
    # Listing it in BACKENDS does not give it what it needs.
    ({"TTS_BACKEND": "openai_tts", "BACKENDS": "openai_tts,espeak"},
     ["TTS_BACKEND=openai_tts", "OPENAI_TTS_BASE_URL"]),
    # The default address of ElevenLabs, written out, without a key, reaches nothing either.
    ({"TTS_BACKEND": "elevenlabs", "ELEVENLABS_BASE_URL": "https://api.elevenlabs.io/"},
     ["TTS_BACKEND=elevenlabs", "ELEVENLABS_API_KEY"]),
    ({"TTS_BACKEND": "nope"}, ["TTS_BACKEND", "unknown backend 'nope'", *KNOWN]),
    ({"FALLBACK_BACKEND": "nope"}, ["FALLBACK_BACKEND", "unknown backend 'nope'", *KNOWN]),
    ({"BACKENDS": "piper,espeak,nope"}, ["BACKENDS", "unknown backend 'nope'", *KNOWN]),
    ({"TTS_BACKEND": ""}, ["TTS_BACKEND", "unknown backend ''"]),
]
WORKING: list[dict[str, str]] = [
    {"TTS_BACKEND": "openai_tts", "OPENAI_TTS_BASE_URL": "http://127.0.0.1:9/v1"},
    {"TTS_BACKEND": "xtts", "XTTS_URL": "http://127.0.0.1:9"},
    {"TTS_BACKEND": "coqui", "COQUI_URL": "http://127.0.0.1:9"},
    {"TTS_BACKEND": "wyoming", "WYOMING_TTS_URI": "tcp://127.0.0.1:9"},
    {"TTS_BACKEND": "command", "COMMAND_TTS": "espeak-ng --stdout"},
    {"TTS_BACKEND": "elevenlabs", "ELEVENLABS_API_KEY": "sk-x"},
    {"TTS_BACKEND": "elevenlabs", "ELEVENLABS_BASE_URL": "http://127.0.0.1:9"},
    {"FALLBACK_BACKEND": "xtts", "XTTS_URL": "http://127.0.0.1:9"},
    {"TTS_BACKEND": "snac_llamacpp"},  # SNAC_URL has a default (a local llama.cpp)
    {"TTS_BACKEND": "synthetic", "FALLBACK_BACKEND": "synthetic"},  # no fallback
    {"FALLBACK_BACKEND": ""},
    {"BACKENDS": "openai_tts,xtts"},  # enabled but neither active nor fallback: /adapters says
]


def case_id(case: tuple[dict[str, str], list[str]] | dict[str, str]) -> str:
    env = case[0] if isinstance(case, tuple) else case
    return ",".join(f"{k}={v}" for k, v in env.items())


def lower(env: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in env.items()}


def assert_names(message: str, names: list[str], *, any_case: bool = False) -> None:
    """Every name is in the message (POST /config spells a field as it was sent: any_case)."""
    for name in names:
        assert (name.lower() in message.lower()) if any_case else (name in message), \
            (name, message)


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No Morpheus setting from the caller's environment leaks into a test."""
    for key in os.environ:
        if key.lower() in field_names():
            monkeypatch.delenv(key)
    return monkeypatch


# ------------------------------------------------------------------------------ the rules


@pytest.mark.parametrize("env,names", HALF_WORKING, ids=[case_id(c) for c in HALF_WORKING])
def test_half_working_settings_are_refused_naming_the_settings(env: dict[str, str],
                                                               names: list[str]) -> None:
    with pytest.raises(ValidationError) as info:
        build_settings(ConfigSource(env_file=None), environ=env)
    from server.config import describe_invalid

    assert_names(describe_invalid(info.value), names)


@pytest.mark.parametrize("env", WORKING, ids=[case_id(c) for c in WORKING])
def test_settings_that_work_are_taken(env: dict[str, str]) -> None:
    settings = build_settings(ConfigSource(env_file=None), environ=env)
    for role in ("tts_backend", "fallback_backend"):
        named = getattr(settings, role)
        assert named is None or named in settings.enabled_backends


def test_the_active_and_fallback_backends_are_enabled_by_being_named() -> None:
    s = Settings(tts_backend="openai_tts", openai_tts_base_url="http://127.0.0.1:9/v1",
                 fallback_backend="synthetic", backends="piper")
    assert s.enabled_backends == ["piper", "openai_tts", "synthetic"]
    assert Settings(fallback_backend="").fallback_backend is None


# ------------------------------------------------------------------------------ at start-up


@pytest.mark.parametrize("env,names", HALF_WORKING, ids=[case_id(c) for c in HALF_WORKING])
def test_morpheus_serve_refuses_to_start(clean_environ: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str],
                                         env: dict[str, str], names: list[str]) -> None:
    for key, value in env.items():
        clean_environ.setenv(key, value)
    assert cli.main(["--env-file", "", "serve", "--host", "127.0.0.1", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert_names(err, names)
    assert err.startswith("morpheus: refusing to start") and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_the_backend_flag_and_the_env_file_are_checked_too(clean_environ: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    assert cli.main(["--env-file", "", "serve", "--backend", "xtts"]) == 2
    assert_names(capsys.readouterr().err, ["TTS_BACKEND=xtts", "XTTS_URL"])
    env = tmp_path / ".env"
    env.write_text("FALLBACK_BACKEND=coqui\n")
    assert cli.main(["--env-file", str(env), "say", "hi", "-o", str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err
    assert_names(err, ["FALLBACK_BACKEND=coqui", "COQUI_URL", str(env)])
    assert not (tmp_path / "x.wav").exists()


def test_a_refused_start_exits_non_zero_with_one_paragraph_and_no_traceback(
        tmp_path: Path) -> None:
    names = field_names()
    environ = {k: v for k, v in os.environ.items() if k.lower() not in names}
    environ.update(PYTHONPATH=str(ROOT), TTS_BACKEND="openai_tts")
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "--env-file", "", "serve", "--host", "127.0.0.1",
         "--port", "0"], cwd=tmp_path, env=environ, capture_output=True,
        text=True, timeout=60)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    [paragraph] = [line for line in done.stderr.splitlines() if line.strip()]
    assert_names(paragraph, ["TTS_BACKEND=openai_tts", "OPENAI_TTS_BASE_URL"])


# ------------------------------------------------------------------------------ on .env reload


@pytest.mark.parametrize("env,names", HALF_WORKING, ids=[case_id(c) for c in HALF_WORKING])
def test_an_env_edit_that_would_half_work_keeps_the_last_good_settings(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, env: dict[str, str],
        names: list[str]) -> None:
    path = tmp_path / ".env"
    path.write_text("TTS_BACKEND=synthetic\nPLAYBACK_BUFFER_MS=300\n")
    store = SettingsStore(build_settings(ConfigSource(env_file=path), environ={}),
                          env_file=path, environ={})
    path.write_text("PLAYBACK_BUFFER_MS=250\n" + "".join(f"{k}={v}\n" for k, v in env.items()))
    os.utime(path, (time.time() + 5, time.time() + 5))
    with caplog.at_level(logging.ERROR, logger="morpheus.config"):
        assert not store.reload_if_changed()
    assert store.current.tts_backend == "synthetic" and store.current.playback_buffer_ms == 300
    assert_names(caplog.text, names)
    path.write_text("TTS_BACKEND=synthetic\nPLAYBACK_BUFFER_MS=250\n")  # then a good edit
    os.utime(path, (time.time() + 10, time.time() + 10))
    assert store.reload_if_changed() and store.current.playback_buffer_ms == 250


# ------------------------------------------------------------------------------ on POST /config


async def test_post_config_refuses_every_half_working_change(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    for env, names in HALF_WORKING:
        async with srv.http.post(srv.url + "/config", json=lower(env)) as r:
            body = await r.json()
            assert r.status == 400, (env, r.status, body)
        assert_names(body["error"]["message"], names, any_case=True)
    async with srv.http.get(srv.url + "/config") as r:
        cfg = await r.json()
    assert (cfg["tts_backend"], cfg["fallback_backend"], cfg["backends"]) == \
        ("synthetic", "espeak", Settings().backends)


async def test_post_config_validates_the_change_as_a_whole(serve) -> None:
    upstream = await serve(tts_backend="piper")
    srv = await serve(tts_backend="synthetic")
    url = upstream.url + "/v1"
    async with srv.http.post(srv.url + "/config", json={"tts_backend": "openai_tts"}) as r:
        assert r.status == 400
    # The backend and its address in one change: taken, and enabled by being named.
    async with srv.http.post(srv.url + "/config", json={
            "tts_backend": "openai_tts", "openai_tts_base_url": url}) as r:
        assert r.status == 200, await r.text()
    async with srv.http.post(srv.url + "/v1/audio/speech", json={"input": "Now it speaks."}) as r:
        assert r.status == 200 and r.headers["X-Backend"] == "openai_tts"
        assert decode(await r.read()).duration_s > 0.5
    # Taking away what the active backend needs is refused.
    async with srv.http.post(srv.url + "/config", json={"openai_tts_base_url": ""}) as r:
        assert r.status == 400
        assert_names((await r.json())["error"]["message"],
                     ["TTS_BACKEND=openai_tts", "OPENAI_TTS_BASE_URL"])
    async with srv.http.get(srv.url + "/config") as r:
        assert (await r.json())["openai_tts_base_url"] == url


# ------------------------------------------------------------------------------ the report


async def test_the_reported_configuration_serves_a_default_request(serve) -> None:
    """TTS_BACKEND=openai_tts with OPENAI_TTS_BASE_URL, BACKENDS left alone (the issue)."""
    upstream = await serve(tts_backend="piper")  # a second Morpheus: an OpenAI-shaped upstream
    settings = build_settings(ConfigSource(env_file=None), environ={
        "TTS_BACKEND": "openai_tts", "OPENAI_TTS_BASE_URL": upstream.url + "/v1",
        "WEBRTC_HOST_ADDRESSES": "127.0.0.1"})
    assert "openai_tts" not in settings.backends  # BACKENDS is the default
    async with running_server(settings) as srv:
        async with srv.http.post(srv.url + "/v1/audio/speech",
                                 json={"input": "Hello from the upstream."}) as r:
            assert r.status == 200, await r.text()
            assert r.headers["X-Backend"] == "openai_tts"
            audio = decode(await r.read())
        assert audio.duration_s > 0.8 and audio.rms_dbfs > -35
        async with srv.http.get(srv.url + "/adapters") as r:
            rows = {row["name"]: row for row in (await r.json())["adapters"]}
        assert rows["openai_tts"]["enabled"] and rows["openai_tts"]["active"]
        assert rows["openai_tts"]["ready"], rows["openai_tts"]
        async with srv.http.get(srv.url + "/metrics") as r:
            metrics = await r.text()
        assert 'tts_requests_total{backend="openai_tts"' in metrics
