"""The browser UI: the pages, their static files, and the live performance feed (/ws/perf)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import weakref
from pathlib import Path

from aiohttp import WSMsgType, web

from server.app_keys import ORCHESTRATOR

log = logging.getLogger("morpheus.web")

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
PERF_INTERVAL_S = 0.25  # four snapshots a second: smooth plots, negligible cost
PERF_SEND_TIMEOUT_S = 2.0  # a client that cannot take a snapshot in 2 s is dropped

# Open /ws/perf sockets, so shutdown can close them instead of waiting on their loops.
PERF_SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey(
    "perf_sockets", weakref.WeakSet
)

# The UI is served from the same origin as the API and needs nothing from elsewhere.
_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "connect-src 'self' blob:; style-src 'self'; script-src 'self'; worker-src 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
}


def _page(name: str) -> web.FileResponse:
    return web.FileResponse(WEB_DIR / name, headers=_PAGE_HEADERS)


async def index(_request: web.Request) -> web.FileResponse:
    return _page("index.html")


async def agent(_request: web.Request) -> web.FileResponse:
    return _page("agent.html")


def perf_frame(snapshot: dict[str, object]) -> str:
    """One /ws/perf message: the orchestrator snapshot plus the server's wall clock (ms)."""
    return json.dumps({**snapshot, "ts_ms": time.time() * 1000.0})


async def _push_snapshots(request: web.Request, ws: web.WebSocketResponse) -> None:
    orch = request.app[ORCHESTRATOR]
    loop = asyncio.get_running_loop()
    deadline = loop.time()
    try:
        while not ws.closed:
            frame = perf_frame(orch.snapshot())
            await asyncio.wait_for(ws.send_str(frame), PERF_SEND_TIMEOUT_S)
            # Absolute deadlines: a slow send does not stretch the interval for later frames.
            deadline = max(deadline + PERF_INTERVAL_S, loop.time())
            await asyncio.sleep(deadline - loop.time())
    except (ConnectionError, asyncio.TimeoutError) as e:
        # A vanished or stuck client: closing ends the receive loop in perf_socket.
        log.debug("perf client dropped: %r", e)
        await ws.close()
    except Exception:
        log.exception("perf snapshot failed; closing the perf socket")
        await ws.close(code=1011, message=b"snapshot failed")


async def perf_socket(request: web.Request) -> web.WebSocketResponse:
    """Push orch.snapshot() four times a second until the client leaves."""
    ws = web.WebSocketResponse(heartbeat=20.0)
    await ws.prepare(request)
    request.app[PERF_SOCKETS].add(ws)
    pusher = asyncio.create_task(_push_snapshots(request, ws))
    try:
        # Incoming messages are ignored; reading them is how a close or a vanished peer shows.
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        request.app[PERF_SOCKETS].discard(ws)
        pusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pusher
        await ws.close()
    return ws


async def _close_perf_sockets(app: web.Application) -> None:
    sockets = app[PERF_SOCKETS]
    for ws in list(sockets):
        await ws.close(code=1001, message=b"server shutdown")


def add_web_routes(app: web.Application) -> None:
    """Register GET /, GET /agent, /static/* (the web/ folder) and GET /ws/perf."""
    app[PERF_SOCKETS] = weakref.WeakSet()
    app.on_shutdown.append(_close_perf_sockets)
    app.router.add_get("/", index, name="ui_index")
    app.router.add_get("/agent", agent, name="ui_agent")
    app.router.add_get("/ws/perf", perf_socket, name="ui_perf")
    app.router.add_static("/static/", WEB_DIR, name="ui_static", follow_symlinks=False)


__all__ = ["PERF_INTERVAL_S", "PERF_SOCKETS", "WEB_DIR", "add_web_routes", "perf_frame"]
