"""Who may use this server: the API key, and which routes check it themselves.

When `API_KEY` is set, every route but the health probes and the web UI's static files needs
it (the middleware in server/guard.py enforces that): the pages hold no data and must load to
ask the user for the key; every API call they make carries it. Clients present it as `Authorization: Bearer <key>`, as
`xi-api-key` (ElevenLabs clients), or, for WebSocket and WebRTC where browsers cannot set
headers, as the `api_key` query parameter. The ElevenLabs WebSocket routes may also send it in
their first message, so they check it themselves with `key_ok` (DEFERRED_AUTH).
"""

from __future__ import annotations

import hmac
import re
from typing import Any

from aiohttp import web

OPEN_PATHS = frozenset({"/healthz", "/readyz"})  # GET only: liveness and readiness probes
UI_PATHS = frozenset({"/", "/agent"})  # GET only: the pages (their API calls need the key)
UI_PREFIX = "/static/"  # GET only: the pages' scripts and styles
# WebSocket routes that accept the key in their first message and check it there.
DEFERRED_AUTH = re.compile(r"^/v1/text-to-speech/[^/]+/(?:multi-)?stream-input$")


def key_ok(settings: Any, presented: str | None) -> bool:
    """Whether `presented` is the configured API key (always True when none is set).
    Constant-time, so the key cannot be guessed byte by byte from response times."""
    expected = settings.api_key
    if not expected:
        return True
    if not presented:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "replace"),
                               expected.encode("utf-8", "replace"))


def presented_key(request: web.Request) -> str | None:
    """The key a request carries: Bearer header, xi-api-key header, or api_key query."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return (request.headers.get("xi-api-key") or request.query.get("api_key")
            or request.query.get("xi_api_key"))


def header_value(text: str, limit: int = 200) -> str:
    """A response header built from request input: printable ASCII only (a newline would
    split the header, and aiohttp refuses to send it), at most `limit` characters."""
    safe = "".join(ch if " " <= ch <= "~" else "?" for ch in text[:limit])
    return safe + ("..." if len(text) > limit else "")


def public_path(method: str, path: str) -> bool:
    """Whether this request needs no API key: probes and the UI's static files."""
    if method not in ("GET", "HEAD"):
        return False
    return path in OPEN_PATHS or path in UI_PATHS or path.startswith(UI_PREFIX)


__all__ = ["DEFERRED_AUTH", "OPEN_PATHS", "header_value", "key_ok", "presented_key",
           "public_path"]
