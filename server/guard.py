"""The middleware every request passes: the Host, foreign origins, the API key, CORS, JSON errors.

- Every request, whatever its method or route (WebSocket upgrades, the WebRTC offer and the
  UI's pages included), must name a host this server answers to (server/security.py
  `host_allowed`, ALLOWED_HOSTS): a page that rebinds its DNS name to 127.0.0.1 is
  same-origin in the browser's eyes, so only the Host it sends tells it apart (403).
- Browsers send `Origin` with cross-site requests. A state-changing request (POST, PUT, PATCH,
  DELETE) or a WebSocket upgrade from an origin other than this server's own or one listed in
  CORS_ORIGINS is refused (403): a page the user visits cannot drive or reconfigure Morpheus.
  Requests without `Origin` (curl, SDKs, servers) are not browsers' and pass.
- With API_KEY set, every route but GET /healthz, /readyz and the UI's static pages needs the
  key (401 otherwise); the ElevenLabs WebSocket routes check it themselves (their first
  message may carry it).
- CORS is off unless CORS_ORIGINS lists origins: those get CORS headers and preflights.
- aiohttp's own errors (404, 405, 413 ...) are answered as JSON in the API's error shape.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from server.app_keys import SETTINGS
from server.errors import json_error
from server.lifecycle import is_loopback
from server.security import (
    DEFERRED_AUTH,
    header_value,
    host_allowed,
    key_ok,
    presented_key,
    public_path,
)

log = logging.getLogger("morpheus.guard")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CORS_ORIGIN = web.RequestKey("cors_origin", str)  # the listed origin a request came from
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CORS_ALLOW_HEADERS = "Authorization, Content-Type, xi-api-key"
CORS_EXPOSE_HEADERS = ("X-Request-ID, X-Backend, X-Sample-Rate, X-Degraded, X-Voice, "
                       "X-Voice-Fallback, Retry-After")


def allowed_origins(cors_origins: str) -> set[str]:
    return {_origin(o) for o in cors_origins.split(",") if o.strip()}


def _origin(url: str) -> str:
    """scheme://host[:port], lowercased, default ports dropped: how browsers spell Origin."""
    parts = urlsplit(url.strip().lower())
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    default = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(parts.scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{host}{port}"


def same_origin(request: web.Request, origin: str) -> bool:
    own = _origin(f"{request.scheme}://{request.host}")
    return origin == own


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[SETTINGS].current
    refused = _refused_host(request, settings)
    if refused is not None:
        return refused
    raw_origin = request.headers.get(hdrs.ORIGIN)
    origin = _origin(raw_origin) if raw_origin and raw_origin != "null" else raw_origin
    listed = origin is not None and origin in allowed_origins(settings.cors_origins)
    if request.method == "OPTIONS" and listed and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers:
        return _preflight(origin or "")
    if origin is not None and (request.method in UNSAFE_METHODS or _is_websocket(request)):
        if not listed and not same_origin(request, origin):
            log.warning("refused a cross-origin %s %s from %s", request.method, request.path,
                        origin)
            return json_error(403, f"cross-origin request from {origin} refused; allow it with "
                              "CORS_ORIGINS", field="Origin", type_="forbidden")
    if settings.api_key and not _exempt(request):
        if not key_ok(settings, presented_key(request)):
            return json_error(401, "missing or wrong API key: send 'Authorization: Bearer "
                              "<API_KEY>' (or xi-api-key, or ?api_key= on WebSocket/WebRTC)",
                              field="Authorization", type_="authentication_error",
                              headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="morpheus"'})
    if listed:
        request[CORS_ORIGIN] = origin or ""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        text = (e.text or "").strip()
        message = e.reason if not text or text.startswith(str(e.status)) else text
        return json_error(e.status, message, type_="invalid_request_error",
                          headers={k: v for k, v in e.headers.items()
                                   if k not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH)})


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: CORS headers for a listed origin, streamed responses included."""
    origin = request.get(CORS_ORIGIN)
    if origin and not isinstance(response, web.WebSocketResponse):
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = CORS_EXPOSE_HEADERS
        response.headers.add(hdrs.VARY, "Origin")


def _refused_host(request: web.Request, settings: Any) -> web.Response | None:
    """The 403 for a Host this server does not answer to; None when it may be served. The raw
    header is read: aiohttp's `request.host` falls back to the socket's address when the
    header is missing, which would let a request that names no host pass as an IP literal."""
    given = request.headers.getall(hdrs.HOST, [])
    header = given[0] if len(given) == 1 else None
    if host_allowed(header, settings.allowed_hosts, loopback_only=is_loopback(settings.host)):
        return None
    shown = "" if header is None else header_value(header, 100)
    what = (f"a request with {len(given)} Host headers" if len(given) > 1
            else f"host {shown!r}" if shown.strip()
            else "a request that names no host (Host header)")
    log.warning("refused %s %s for %s (ALLOWED_HOSTS)", request.method, request.path, what)
    return json_error(403, f"{what} is not served here; a name this server answers to must be "
                      "listed in ALLOWED_HOSTS (IP addresses and localhost always are)",
                      field="Host", type_="forbidden")


def _exempt(request: web.Request) -> bool:
    return public_path(request.method, request.path) or bool(DEFERRED_AUTH.match(request.path))


def _preflight(origin: str) -> web.Response:
    return web.Response(status=204, headers={
        hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin,
        hdrs.ACCESS_CONTROL_ALLOW_METHODS: "GET, POST, DELETE, OPTIONS",
        hdrs.ACCESS_CONTROL_ALLOW_HEADERS: CORS_ALLOW_HEADERS,
        hdrs.ACCESS_CONTROL_MAX_AGE: "600",
        hdrs.VARY: "Origin",
    })


__all__ = ["add_cors_headers", "allowed_origins", "guard", "same_origin"]
