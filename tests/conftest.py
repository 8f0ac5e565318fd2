"""Shared fixtures: a real Morpheus server on 127.0.0.1 built from the app factory."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from server.app import create_app
from server.config import Settings, field_names

# Environment variables Morpheus reads besides its settings.
MORPHEUS_ENVIRON = {"MORPHEUS_ENV_FILE"}


@pytest.fixture(scope="session", autouse=True)
def no_morpheus_settings_from_the_environment() -> Iterator[None]:
    """Tests state their settings: an API_KEY, TTS_BACKEND, ... (or MORPHEUS_ENV_FILE) in the
    caller's environment would reach every `Settings()` (pydantic-settings reads the
    environment, also on reloads and in POST /config) and every child that inherits it."""
    names = field_names()
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.lower() in names or key in MORPHEUS_ENVIRON:
                mp.delenv(key)
        yield


class Running:
    """A server started for one test: its base URL, port, app and an HTTP session."""

    def __init__(self, app: web.Application, port: int, session: aiohttp.ClientSession) -> None:
        self.app = app
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.http = session


@asynccontextmanager
async def running_server(settings: Settings, *,
                         env_file: Path | None = None) -> AsyncIterator[Running]:
    """The app on a port of the OS's choosing on 127.0.0.1."""
    app = create_app(settings, env_file=env_file)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    session = aiohttp.ClientSession()
    try:
        yield Running(app, int(runner.addresses[0][1]), session)
    finally:
        await session.close()
        await runner.cleanup()


ServerFactory = Callable[..., Awaitable[Running]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """`srv = await serve(tts_backend="synthetic", ...)`: settings keys as keyword arguments,
    over the defaults (never the caller's environment: see above)."""
    stack: list[Any] = []

    async def start(*, env_file: Path | None = None, **overrides: Any) -> Running:
        overrides.setdefault("outputs_dir", tmp_path / "outputs")
        overrides.setdefault("voices_dir", tmp_path / "voices")
        overrides.setdefault("webrtc_host_addresses", "127.0.0.1")
        cm = running_server(Settings(**overrides), env_file=env_file)
        srv = await cm.__aenter__()
        stack.append(cm)
        return srv

    yield start
    for cm in reversed(stack):
        await cm.__aexit__(None, None, None)
