"""The realtime event vocabulary (WebSocket and the WebRTC `events` channel): parse and build.

Client -> server messages parse into frozen dataclasses; anything malformed raises
`ProtocolError`, whose `payload()` is the `error` event to send back (the connection stays open).
Server -> client events are built by the small functions at the bottom so that every transport
spells them the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

MIN_SAMPLE_RATE_HZ = 8000
MAX_SAMPLE_RATE_HZ = 48000
MAX_MESSAGE_BYTES = 1 << 20

# error codes (the `code` of an `error` event)
INVALID_JSON = "invalid_json"
INVALID_MESSAGE = "invalid_message"  # not an object, or no `type`
UNKNOWN_TYPE = "unknown_type"
INVALID_FIELD = "invalid_field"  # wrong type or out of range; `field` names it
UNSUPPORTED = "unsupported"  # understood, but not on this transport (e.g. binary input)
BAD_REQUEST = "bad_request"  # the engine refused the request (unknown voice, ...)
BUSY = "busy"  # every synthesis slot and the queue are taken; retry later
BACKEND_UNAVAILABLE = "backend_unavailable"
ENGINE_ERROR = "engine_error"
RATE_LIMITED = "rate_limited"  # messages arrive faster than they can be handled
SERVER_SHUTDOWN = "server_shutdown"  # the server is stopping; reconnect (to another replica)


class ProtocolError(Exception):
    """A client message that cannot be accepted; translated into an `error` event."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def payload(self) -> dict[str, Any]:
        return error(self.code, self.message, self.field)


# --- client -> server ----------------------------------------------------------------------


@dataclass(frozen=True)
class SessionUpdate:
    """`session.update`: only the fields the client sent are not None."""

    voice: str | None = None
    backend: str | None = None
    low_latency: bool | None = None
    sample_rate_hz: int | None = None
    speed: float | None = None
    barge_in: bool | None = None  # WebRTC only: speech onset in the mic cancels the response
    normalize: bool | None = None  # numbers, dates, URLs read as words (TEXT_NORMALIZATION)


@dataclass(frozen=True)
class InputTextAppend:
    text: str


@dataclass(frozen=True)
class InputTextFlush:
    pass


@dataclass(frozen=True)
class InputTextDone:
    pass


@dataclass(frozen=True)
class ResponseCancel:
    pass


@dataclass(frozen=True)
class PlaybackReport:
    """Where the client's playback is. `played_ms` counts from the start of the response
    (or of the connection: the server tells the two apart); `buffer_ms` is audio queued at
    the client and not yet played (for WebRTC: the jitter buffer delay)."""

    played_ms: float | None = None
    buffer_ms: float | None = None
    response_id: str | None = None
    concealed_samples: int | None = None
    total_samples_received: int | None = None


ClientMessage = (
    SessionUpdate | InputTextAppend | InputTextFlush | InputTextDone | ResponseCancel | PlaybackReport
)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _get(obj: dict[str, Any], key: str, kind: str, path: str, *, required: bool = False) -> Any:
    """Typed field access: `kind` is str | bool | int | number; None when absent or null."""
    if key not in obj or obj[key] is None:
        if required:
            raise ProtocolError(INVALID_FIELD, f"`{path}` is required", path)
        return None
    value = obj[key]
    ok = {
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "number": _is_number(value),
    }[kind]
    if kind == "int" and _is_number(value) and float(value).is_integer():
        value, ok = int(value), True  # 24000.0 is an integer sample rate
    if not ok:
        raise ProtocolError(INVALID_FIELD, f"`{path}` must be a {kind}", path)
    return value


def _non_negative(value: float | None, path: str) -> float | None:
    if value is not None and value < 0:
        raise ProtocolError(INVALID_FIELD, f"`{path}` must be >= 0", path)
    return None if value is None else float(value)


def _session_update(msg: dict[str, Any]) -> SessionUpdate:
    session = msg.get("session", {})
    if session is None:
        session = {}
    if not isinstance(session, dict):
        raise ProtocolError(INVALID_FIELD, "`session` must be an object", "session")
    rate = _get(session, "sample_rate", "int", "session.sample_rate")
    if rate is not None and not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
        raise ProtocolError(
            INVALID_FIELD,
            f"`session.sample_rate` must be {MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ}",
            "session.sample_rate",
        )
    speed = _get(session, "speed", "number", "session.speed")
    if speed is not None and not 0.25 <= speed <= 4.0:
        raise ProtocolError(INVALID_FIELD, "`session.speed` must be 0.25..4.0", "session.speed")
    voice = _get(session, "voice", "str", "session.voice")
    backend = _get(session, "backend", "str", "session.backend")
    return SessionUpdate(
        voice=voice or None,
        backend=backend or None,
        low_latency=_get(session, "low_latency", "bool", "session.low_latency"),
        sample_rate_hz=rate,
        speed=None if speed is None else float(speed),
        barge_in=_get(session, "barge_in", "bool", "session.barge_in"),
        normalize=_get(session, "normalize", "bool", "session.normalize"),
    )


def _playback_report(msg: dict[str, Any]) -> PlaybackReport:
    return PlaybackReport(
        played_ms=_non_negative(_get(msg, "played_ms", "number", "played_ms"), "played_ms"),
        buffer_ms=_non_negative(_get(msg, "buffer_ms", "number", "buffer_ms"), "buffer_ms"),
        response_id=_get(msg, "response_id", "str", "response_id"),
        concealed_samples=_get(msg, "concealed_samples", "int", "concealed_samples"),
        total_samples_received=_get(
            msg, "total_samples_received", "int", "total_samples_received"
        ),
    )


def parse_client_message(raw: str | bytes) -> ClientMessage:
    """One JSON text message -> a typed message; raises ProtocolError with the reason."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ProtocolError(INVALID_MESSAGE, f"message larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(INVALID_JSON, f"not valid JSON: {e}") from e
    if not isinstance(msg, dict):
        raise ProtocolError(INVALID_MESSAGE, "a message must be a JSON object")
    kind = msg.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(INVALID_MESSAGE, "a message needs a string `type`", "type")
    if kind == "session.update":
        return _session_update(msg)
    if kind == "input_text.append":
        return InputTextAppend(text=_get(msg, "text", "str", "text", required=True))
    if kind == "input_text.flush":
        return InputTextFlush()
    if kind == "input_text.done":
        return InputTextDone()
    if kind == "response.cancel":
        return ResponseCancel()
    if kind == "playback.report":
        return _playback_report(msg)
    raise ProtocolError(UNKNOWN_TYPE, f"unknown message type {kind!r}", "type")


CLIENT_TYPES = (
    "session.update",
    "input_text.append",
    "input_text.flush",
    "input_text.done",
    "response.cancel",
    "playback.report",
)


# --- server -> client ----------------------------------------------------------------------


@dataclass(frozen=True)
class SessionConfig:
    """The effective session, as sent in `session.created` / `session.updated`."""

    voice: str | None = None  # None: the backend's default voice
    backend: str | None = None
    low_latency: bool = False
    sample_rate_hz: int = 24000
    speed: float = 1.0
    barge_in: bool = True
    normalize: bool | None = None  # None: the server's TEXT_NORMALIZATION

    def updated(self, update: SessionUpdate) -> SessionConfig:
        changes = {
            f.name: getattr(update, f.name)
            for f in fields(update)
            if getattr(update, f.name) is not None
        }
        return SessionConfig(**(self.__dict__ | changes))

    def as_dict(self) -> dict[str, Any]:
        return {
            "voice": self.voice,
            "backend": self.backend,
            "low_latency": self.low_latency,
            "sample_rate": self.sample_rate_hz,
            "speed": self.speed,
            "barge_in": self.barge_in,
            "normalize": self.normalize,
        }


def error(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if field is not None:
        ev["field"] = field
    ev.update(extra)
    return ev


def session_created(session: SessionConfig) -> dict[str, Any]:
    return {"type": "session.created", "session": session.as_dict()}


def session_updated(session: SessionConfig) -> dict[str, Any]:
    return {"type": "session.updated", "session": session.as_dict()}


def response_created(response_id: str) -> dict[str, Any]:
    return {"type": "response.created", "response_id": response_id}


def response_audio_started(response_id: str, ttft_ms: float | None) -> dict[str, Any]:
    return {"type": "response.audio.started", "response_id": response_id, "ttft_ms": ttft_ms}


def segment_done(response_id: str, text: str, audio_ms: float) -> dict[str, Any]:
    return {
        "type": "segment.done",
        "response_id": response_id,
        "text": text,
        "audio_ms": round(audio_ms, 1),
    }


def word(response_id: str, text: str, start_ms: float, end_ms: float,
         exact: bool, spoken: str = "") -> dict[str, Any]:
    """When a word of the client's text is heard, in ms of the response's audio. `text` is
    the client's own ("$1,234"); `spoken`, when it differs, what was said for it ("one
    thousand two hundred thirty-four dollars"). `exact`: from the engine; else estimated
    from the segment's length."""
    ev: dict[str, Any] = {
        "type": "response.word",
        "response_id": response_id,
        "text": text,
        "start_ms": round(start_ms, 1),
        "end_ms": round(end_ms, 1),
        "exact": exact,
    }
    if spoken and spoken != text:
        ev["spoken"] = spoken
    return ev


def response_done(response_id: str, status: str, audio_ms: float, **extra: Any) -> dict[str, Any]:
    ev = {
        "type": "response.done",
        "response_id": response_id,
        "status": status,
        "audio_ms": round(audio_ms, 1),
    }
    ev.update(extra)
    return ev


def output_audio_buffer_cleared(response_id: str, played_ms: float,
                                heard_text: str | None = None) -> dict[str, Any]:
    """The listener's audio was cut at `played_ms`; `heard_text` is what they heard of it."""
    ev: dict[str, Any] = {
        "type": "output_audio_buffer.cleared",
        "response_id": response_id,
        "played_ms": round(played_ms, 1),
    }
    if heard_text is not None:
        ev["heard_text"] = heard_text
    return ev


def speech_started(audio_start_ms: float) -> dict[str, Any]:
    return {"type": "input_audio_buffer.speech_started", "audio_start_ms": round(audio_start_ms, 1)}


def dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


__all__ = [
    "CLIENT_TYPES",
    "ClientMessage",
    "InputTextAppend",
    "InputTextDone",
    "InputTextFlush",
    "PlaybackReport",
    "ProtocolError",
    "ResponseCancel",
    "SessionConfig",
    "SessionUpdate",
    "dumps",
    "error",
    "output_audio_buffer_cleared",
    "parse_client_message",
    "response_audio_started",
    "response_created",
    "response_done",
    "segment_done",
    "session_created",
    "session_updated",
    "speech_started",
    "word",
]
