"""HTTP to upstreams (httpx): one keep-alive client per adapter, and HTTP failures (an error
status, a refused or silent connection) as the typed errors the orchestrator acts on."""

from __future__ import annotations

import httpx

from adapters.errors import (
    BackendTimeout,
    BackendUnavailable,
    BadCredentials,
    EngineError,
    TTSError,
    UpstreamRejected,
)
from adapters.upstream.pool import Timeouts


def http_client(timeouts: Timeouts, *, max_connections: int = 32,
                headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    """One keep-alive client per adapter instance, shared by all its streams."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeouts.read_s, connect=timeouts.connect_s),
        limits=httpx.Limits(max_connections=max_connections,
                            max_keepalive_connections=max(1, max_connections // 2)),
        headers=headers,
    )


def status_error(status: int, detail: bytes | str, url: str, backend: str) -> TTSError:
    """An HTTP error status from an upstream -> the typed error the orchestrator acts on."""
    text = detail if isinstance(detail, str) else detail.decode("utf-8", "replace")
    message = f"{url} answered HTTP {status}: {text.strip()[:300]}"
    if status in (401, 403):
        return BadCredentials(f"{url} refused the credentials (HTTP {status}): check the API "
                              f"key setting for {backend}. {text.strip()[:200]}", backend=backend)
    if status in (502, 503):
        return BackendUnavailable(message, backend=backend)  # loading, or a proxy with no upstream
    if status in (408, 504):
        return BackendTimeout(message, backend=backend)
    if 400 <= status < 500:
        return UpstreamRejected(message, backend=backend)
    return EngineError(message, backend=backend)


def transport_error(e: httpx.HTTPError, url: str, backend: str) -> TTSError:
    """A connection-level httpx failure -> refused / timed out / dropped, typed."""
    if isinstance(e, httpx.ConnectTimeout):
        return BackendTimeout(f"connecting to {url} timed out", backend=backend)
    if isinstance(e, httpx.ConnectError):
        return BackendUnavailable(f"cannot connect to {url}: {e}", backend=backend)
    if isinstance(e, httpx.TimeoutException):
        return BackendTimeout(f"{url} sent nothing within the read timeout", backend=backend)
    return EngineError(f"{url} failed mid-stream: {e!r}", backend=backend)


__all__ = ["http_client", "status_error", "transport_error"]
