"""The speech WebSockets of an app, native and ElevenLabs alike: one cap (WS_MAX_CONNECTIONS),
one close at shutdown."""

from __future__ import annotations

from aiohttp import web

# Open speech WebSockets of an app: counted against WS_MAX_CONNECTIONS, closed at shutdown.
WS_SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("speech_sockets", set)


async def close_speech_sockets(app: web.Application) -> None:
    """on_shutdown: open speech WebSockets are told the server is going away."""
    sockets: set[web.WebSocketResponse] = app[WS_SOCKETS]
    for ws in list(sockets):
        await ws.close(code=1001, message=b"server shutdown")


__all__ = ["WS_SOCKETS", "close_speech_sockets"]
