"""Translate Morpheus errors into HTTP responses (the only place that knows status codes)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from adapters.errors import (
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    EngineError,
    MorpheusError,
    NoAudioError,
)


class MalformedBody(BadRequest):
    """The request body is not a JSON object."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="body")


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body; MalformedBody (400, field "body") otherwise."""
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise MalformedBody(f"request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise MalformedBody("request body must be a JSON object")
    return body


def error_body(message: str, *, field: str | None = None, type_: str = "invalid_request_error",
               code: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, plus `field` at the top level for plain clients."""
    return {"error": {"message": message, "type": type_, "param": field, "code": code},
            "field": field}


def json_error(status: int, message: str, *, field: str | None = None,
               type_: str = "invalid_request_error", code: str | None = None,
               headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(error_body(message, field=field, type_=type_, code=code),
                             status=status, headers=headers)


def from_validation(e: ValidationError) -> web.Response:
    first = e.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or None
    return json_error(400, f"{field}: {first.get('msg')}" if field else str(first.get("msg")),
                      field=field, code=first.get("type"))


def from_morpheus(e: MorpheusError) -> web.Response:
    if isinstance(e, BadRequest):
        return json_error(e.status, str(e), field=e.field)
    if isinstance(e, (BackendUnavailable, BackendTimeout)):
        return json_error(503, str(e), type_="backend_unavailable",
                          code=getattr(e, "backend", None), headers={"Retry-After": "5"})
    if isinstance(e, (EngineError, NoAudioError)):
        return json_error(502, str(e), type_="engine_error", code=getattr(e, "backend", None))
    return json_error(500, str(e), type_="server_error")
