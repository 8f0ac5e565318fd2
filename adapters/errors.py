"""Typed errors raised by adapters and the pipeline; translated to HTTP/WS only at the edge.

    MorpheusError
     +-- TTSError                    an engine could not produce the audio asked for
     |    +-- BackendUnavailable     not installed, not loaded, upstream refused (HTTP 503)
     |    +-- BackendTimeout         no audio within a deadline (HTTP 503 / failover)
     |    +-- EngineError            the engine failed mid-stream (HTTP 502 / failover)
     |    |    +-- UpstreamRejected  the upstream answered 4xx: retrying will not help
     |    |    |    +-- BadCredentials   401/403: the API key is missing or wrong
     |    |    +-- MalformedAudio    the upstream sent bytes that are not the audio promised
     |    |    +-- UpstreamLost      one upstream of a pool died mid-stream; another may go on
     |    +-- NoAudioError           text went in, no audio came out (never a silent 200)
     +-- BadRequest                  the request itself is wrong (HTTP 400), names a field
"""

from __future__ import annotations


class MorpheusError(Exception):
    """Root of every error Morpheus raises on purpose."""


class TTSError(MorpheusError):
    """An engine could not produce the audio asked for."""

    retryable: bool = True

    def __init__(self, message: str, *, backend: str | None = None) -> None:
        super().__init__(message)
        self.backend = backend


class BackendUnavailable(TTSError):
    """The backend cannot be used now (missing dependency, model, or upstream down)."""


class BackendTimeout(TTSError):
    """The backend produced nothing within its deadline."""


class EngineError(TTSError):
    """The engine failed while producing audio."""


class UpstreamRejected(EngineError):
    """The upstream answered 4xx: our request does not fit it; retrying will not help."""

    retryable = False


class BadCredentials(UpstreamRejected):
    """The upstream refused our credentials (HTTP 401/403): the API key setting is wrong."""


class MalformedAudio(EngineError):
    """The upstream answered, but not with the audio it promised (wrong format, garbage)."""


class UpstreamLost(EngineError):
    """One upstream of a backend's pool failed after audio began; another upstream of the
    same backend can speak the rest, so the orchestrator continues there (not a failover)."""


class NoAudioError(TTSError):
    """The engine finished without producing any audio for non-empty text."""


class BadRequest(MorpheusError):
    """The request is malformed; `field` names the offending field when there is one."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status
