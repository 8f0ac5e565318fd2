"""Shared fixtures: a real Morpheus server on 127.0.0.1 built from the app factory."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from server.app import create_app
from server.config import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Running:
    """A server started for one test: its base URL, app and an HTTP session."""

    def __init__(self, app: web.Application, url: str, session: aiohttp.ClientSession) -> None:
        self.app = app
        self.url = url
        self.http = session


@asynccontextmanager
async def running_server(settings: Settings, *, env_file: Path | None = None,
                         port: int | None = None) -> AsyncIterator[Running]:
    app = create_app(settings, env_file=env_file)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port or 0)
    await site.start()
    sock_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    session = aiohttp.ClientSession()
    try:
        yield Running(app, f"http://127.0.0.1:{sock_port}", session)
    finally:
        await session.close()
        await runner.cleanup()


ServerFactory = Callable[..., Awaitable[Running]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """`srv = await serve(tts_backend="synthetic", ...)`: settings keys as keyword arguments."""
    stack: list[Any] = []

    async def start(*, env_file: Path | None = None, port: int | None = None,
                    **overrides: Any) -> Running:
        overrides.setdefault("outputs_dir", tmp_path / "outputs")
        overrides.setdefault("voices_dir", tmp_path / "voices")
        overrides.setdefault("webrtc_host_addresses", "127.0.0.1")
        cm = running_server(Settings(**overrides), env_file=env_file, port=port)
        srv = await cm.__aenter__()
        stack.append(cm)
        return srv

    yield start
    for cm in reversed(stack):
        await cm.__aexit__(None, None, None)
