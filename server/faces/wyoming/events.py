"""Wyoming events off the wire, bounded, and the synthesis requests they carry, validated.

The `wyoming` package's own reader trusts its peer: any `data_length` is read into memory, a
header that is not a JSON object crashes the handler task. `read_event` frames the same wire
format (a JSON header line, then `data_length` bytes of JSON merged over the header's `data`,
then `payload_length` bytes) with limits and type checks; what does not fit raises
`MalformedEvent`, after which the stream cannot be re-synchronised and the connection ends.
A well-framed event with wrong field types is a `RequestError` instead: the connection stays.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from wyoming.event import Event
from wyoming.tts import SynthesizeTextFormat

MAX_PAYLOAD_BYTES = 1 << 20  # a TTS server takes no audio; anything larger is abuse
INVALID_FIELD = "invalid_field"  # error codes, in the vocabulary of the WebSocket protocol
UNSUPPORTED = "unsupported"


class MalformedEvent(Exception):
    """The bytes on the connection are not a Wyoming event within limits."""


class RequestError(Exception):
    """A request this server will not carry out; sent back as an `error` event."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


async def read_event(reader: asyncio.StreamReader, *, max_data_bytes: int) -> Event | None:
    """The next event, or None at the end of the stream (also mid-event: the peer left).

    The header line is bounded by the reader's limit (asyncio's 64 KiB by default)."""
    try:
        line = await reader.readline()
    except ValueError as e:  # the reader's limit: no newline within it
        raise MalformedEvent("event header line too long") from e
    if not line.endswith(b"\n"):
        return None
    header = _json_object(line, "event header")
    kind = header.get("type")
    if not isinstance(kind, str) or not kind:
        raise MalformedEvent("event header needs a non-empty string `type`")
    data = header.get("data")
    if data is None:
        data = {}
    elif not isinstance(data, dict):
        raise MalformedEvent("`data` in the header must be an object")
    data_length = _length(header, "data_length", max_data_bytes)
    payload_length = _length(header, "payload_length", MAX_PAYLOAD_BYTES)
    try:
        if data_length:
            data = {**data, **_json_object(await reader.readexactly(data_length), "event data")}
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        return None
    return Event(type=kind, data=data, payload=payload)


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise MalformedEvent(f"{what} is not valid JSON") from e
    if not isinstance(value, dict):
        raise MalformedEvent(f"{what} must be a JSON object")
    return value


def _length(header: dict[str, Any], key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedEvent(f"`{key}` must be a non-negative integer")
    if value > limit:
        raise MalformedEvent(f"`{key}` {value} is over the limit of {limit} bytes")
    return value


# --- synthesis requests -------------------------------------------------------------------


@dataclass(frozen=True)
class VoiceChoice:
    """`voice` as the library defines it: a name (with an optional speaker), or a language."""

    name: str | None = None
    language: str | None = None
    speaker: str | None = None


@dataclass(frozen=True)
class SynthesisRequest:
    """`synthesize` or `synthesize-start`: what to say (empty for a start) and how."""

    text: str
    voice: VoiceChoice | None


def parse_synthesis(event: Event, *, with_text: bool) -> SynthesisRequest:
    """Validate `synthesize` (`with_text`) or `synthesize-start` data; errors name the field."""
    data = event.data
    text = chunk_text(event) if with_text else ""
    text_format = data.get("text_format")
    if text_format not in (None, SynthesizeTextFormat.TEXT.value):
        raise RequestError(UNSUPPORTED, f"text_format {text_format!r} is not supported; "
                           "send plain text")
    return SynthesisRequest(text=text, voice=_voice(data.get("voice")))


def chunk_text(event: Event) -> str:
    text = event.data.get("text")
    if not isinstance(text, str):
        raise RequestError(INVALID_FIELD, "`text` must be a string")
    return text


def _voice(raw: Any) -> VoiceChoice | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise RequestError(INVALID_FIELD, "`voice` must be an object")
    fields = {}
    for key in ("name", "language", "speaker"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise RequestError(INVALID_FIELD, f"`voice.{key}` must be a string")
        fields[key] = value or None
    if fields["name"] is not None:  # as the library reads it: a name overrides the language
        return VoiceChoice(name=fields["name"], speaker=fields["speaker"])
    if fields["language"] is not None:
        return VoiceChoice(language=fields["language"])
    return None


__all__ = ["MalformedEvent", "RequestError", "SynthesisRequest", "VoiceChoice", "chunk_text",
           "parse_synthesis", "read_event"]
