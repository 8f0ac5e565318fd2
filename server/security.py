"""Who may use this server: the Host it is addressed by, the API key, and which routes check
the key themselves.

DNS rebinding: a web page whose name is re-pointed at 127.0.0.1 is same-origin with Morpheus in
the browser's eyes, and its requests name the page's host. So every request must name a host
this server answers to (`host_allowed`): IP literals (no DNS record to flip), `localhost` and
`*.localhost` (browsers resolve those to loopback themselves), and the names in ALLOWED_HOSTS
(exact, `*.example.com` for any name under example.com, or `*` for all). A server bound beyond
loopback with ALLOWED_HOSTS empty answers any name (API_KEY guards it). A request that names no
host at all (no Host, an empty one, `:5005`) or a malformed one is always refused.

When `API_KEY` is set, every route but the health probes and the web UI's static files needs
it (the middleware in server/guard.py enforces that): the pages hold no data and must load to
ask the user for the key; every API call they make carries it. Clients present it as `Authorization: Bearer <key>`, as
`xi-api-key` (ElevenLabs clients), or, for WebSocket and WebRTC where browsers cannot set
headers, as the `api_key` query parameter. The ElevenLabs WebSocket routes may also send it in
their first message, so they check it themselves with `key_ok` (DEFERRED_AUTH).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from functools import lru_cache
from typing import Any

from aiohttp import web

OPEN_PATHS = frozenset({"/healthz", "/readyz"})  # GET only: liveness and readiness probes
UI_PATHS = frozenset({"/", "/agent"})  # GET only: the pages (their API calls need the key)
UI_PREFIX = "/static/"  # GET only: the pages' scripts and styles
# WebSocket routes that accept the key in their first message and check it there.
DEFERRED_AUTH = re.compile(r"^/v1/text-to-speech/[^/]+/(?:multi-)?stream-input$")


_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")  # a DNS name, lowercased, no trailing dot
_PORT = re.compile(r"[0-9]{1,5}")


def host_name(header: str | None) -> str | None:
    """The host a Host header names, lowercased, without port, brackets or trailing dot; None
    when it names none (missing, empty, ':5005') or is not a host (unbracketed IPv6, junk)."""
    if not header:
        return None
    value = header.strip().lower()
    if value.startswith("["):  # [IPv6]:port
        inner, sep, rest = value[1:].partition("]")
        if not sep or (rest and not (rest[0] == ":" and _PORT.fullmatch(rest[1:]))):
            return None
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            return None
        return inner
    name, sep, port = value.partition(":")
    if sep and not _PORT.fullmatch(port):
        return None  # ':' twice (IPv6 without brackets) or a port that is not a number
    name = name.removesuffix(".")  # "localhost." is the same name, written fully qualified
    return name if _NAME.fullmatch(name) else None


def _ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=8)
def allowed_host_patterns(allowed_hosts: str) -> tuple[str, ...]:
    """ALLOWED_HOSTS as patterns: lowercased names, `*.name`, `*`; no trailing dots."""
    return tuple(p.strip().lower().removesuffix(".") for p in allowed_hosts.split(",")
                 if p.strip())


def check_allowed_hosts(allowed_hosts: str) -> None:
    """ValueError naming the first entry of ALLOWED_HOSTS that is not a host pattern."""
    for pattern in allowed_host_patterns(allowed_hosts):
        name = pattern.removeprefix("*.")
        if pattern != "*" and not _NAME.fullmatch(name):
            raise ValueError(f"{pattern!r} is not a host name: list names (no scheme, no "
                             "port), '*.example.com' for the names under example.com, or '*'")


def host_allowed(header: str | None, allowed_hosts: str, *, loopback_only: bool) -> bool:
    """Whether a request whose Host header is `header` may be served (see the docstring
    above); `loopback_only`: the server listens on a loopback address only."""
    name = host_name(header)
    if name is None:
        return False
    if _ip_literal(name) or name == "localhost" or name.endswith(".localhost"):
        return True
    patterns = allowed_host_patterns(allowed_hosts)
    if not patterns:
        return not loopback_only
    return any(p == "*" or p == name or (p.startswith("*.") and name.endswith(p[1:]))
               for p in patterns)


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


def remote_write_refused(settings: Any, remote: str | None) -> bool:
    """Whether a write that changes what the server holds (POST /config, the voice library)
    must be refused: it comes from another machine and no API_KEY is set, so nothing tells
    who sent it. With a key set, the middleware has checked it already."""
    from server.lifecycle import is_loopback

    return not settings.api_key and not is_loopback(remote or "")


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


__all__ = ["DEFERRED_AUTH", "OPEN_PATHS", "allowed_host_patterns", "check_allowed_hosts",
           "header_value", "host_allowed", "host_name", "key_ok", "presented_key", "public_path",
           "remote_write_refused"]
