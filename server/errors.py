"""Translate Morpheus errors into HTTP responses (the only place that knows status codes)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from adapters.errors import (
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    EngineError,
    MorpheusError,
    NoAudioError,
)


class MalformedBody(BadRequest):
    """The request body is not a JSON object (400), not JSON at all (415), or too large (413)."""

    def __init__(self, message: str, *, field: str = "body", status: int = 400) -> None:
        super().__init__(message, field=field, status=status)


def _json_media_type(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json"))


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body. Only `application/json` in UTF-8 is read: a browser
    can send text/plain or form bodies to any site without asking, JSON it cannot."""
    if not _json_media_type(request.content_type):
        raise MalformedBody(f"Content-Type must be application/json, not "
                            f"{request.content_type!r}", field="Content-Type", status=415)
    charset = (request.charset or "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise MalformedBody(f"JSON must be UTF-8; charset {request.charset!r} is not accepted",
                            field="Content-Type", status=415)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as e:
        raise MalformedBody(f"request body too large: {e.text}", status=413) from None
    try:
        body = json.loads(raw.decode("utf-8"))
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


def busy_response(e: Any) -> web.Response:
    """The answer to orchestrator.Busy: 429 when every slot is taken, 503 while draining."""
    retry = {"Retry-After": str(int(e.retry_after_s + 0.999))}
    if getattr(e, "draining", False):
        return json_error(503, "the server is shutting down; retry on another replica",
                          type_="unavailable", headers=retry)
    return json_error(429, "too many concurrent streams; retry later", type_="rate_limit",
                      headers=retry)


def from_morpheus(e: MorpheusError) -> web.Response:
    if isinstance(e, BadRequest):
        return json_error(e.status, str(e), field=e.field)
    if isinstance(e, (BackendUnavailable, BackendTimeout)):
        return json_error(503, str(e), type_="backend_unavailable",
                          code=getattr(e, "backend", None), headers={"Retry-After": "5"})
    if isinstance(e, (EngineError, NoAudioError)):
        return json_error(502, str(e), type_="engine_error", code=getattr(e, "backend", None))
    return json_error(500, str(e), type_="server_error")


Body = TypeVar("Body", bound=BaseModel)


async def read_request(request: web.Request, model: type[Body]) -> Body | web.Response:
    """The JSON body validated as `model`, or the 4xx (OpenAI's shape) that names what is wrong."""
    try:
        return model.model_validate(await read_json_object(request))
    except MalformedBody as e:
        return from_morpheus(e)
    except ValidationError as e:
        return from_validation(e)
