"""Operator routes: /adapters, /config (hot, validated), /metrics, /healthz."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from adapters import registry
from adapters.base import Health
from adapters.errors import MorpheusError
from server.app_keys import BACKENDS, METRICS, ORCHESTRATOR, SETTINGS
from server.config import field_names
from server.errors import (
    MalformedBody,
    from_morpheus,
    from_validation,
    json_error,
    read_json_object,
)

# Every setting that holds a credential is masked in GET /config (and never logged).
SECRET_KEYS = {k for k in field_names() if k == "api_key" or k.endswith("_api_key")}


async def adapters(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS].current
    pool = request.app[BACKENDS]
    orch = request.app[ORCHESTRATOR]
    names = list(registry.BACKENDS)
    # Only enabled backends are asked: a disabled network backend may point at a public API.
    healths = await asyncio.gather(*(
        pool.health(n) if pool.enabled(n)
        else _not_enabled(n) for n in names))
    degraded = {s.backend for s in orch.streams.values() if s.degraded}
    rows = []
    for name, health in zip(names, healths, strict=True):
        row: dict[str, Any] = {
            "name": name, "description": registry.BACKENDS[name].description,
            "enabled": pool.enabled(name), "active": name == settings.tts_backend,
            "fallback": name == settings.fallback_backend, "degraded": name in degraded,
        }
        row.update(health.as_dict())
        row["upstreams"] = _upstreams(pool, name) if pool.enabled(name) else []
        rows.append(row)
    return web.json_response({"active": settings.tts_backend,
                              "fallback": settings.fallback_backend, "adapters": rows})


async def _not_enabled(name: str) -> Health:
    return Health(False, name, reason="not enabled: add it to BACKENDS")


def _upstreams(pool: Any, name: str) -> list[dict[str, Any]]:
    try:
        return pool.instance(name).upstreams()
    except MorpheusError:  # not importable: health() already says why
        return []


def public_config(settings: Any) -> dict[str, Any]:
    data = json.loads(settings.model_dump_json())
    for key in SECRET_KEYS:
        if data.get(key):
            data[key] = "***"
    return data


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(public_config(request.app[SETTINGS].current))


async def post_config(request: web.Request) -> web.Response:
    store = request.app[SETTINGS]
    try:
        body = await read_json_object(request)
    except MalformedBody as e:
        return from_morpheus(e)
    pool = request.app[BACKENDS]
    try:
        if "tts_backend" in {k.lower() for k in body}:
            value = next(v for k, v in body.items() if k.lower() == "tts_backend")
            if not isinstance(value, str):
                return json_error(400, "tts_backend must be a string", field="tts_backend")
            pool.validate_name(value, field="tts_backend")
        unknown = store.update(body)
    except ValidationError as e:
        return from_validation(e)
    except MorpheusError as e:
        return from_morpheus(e)
    return web.json_response({"status": "ok", "unknown_keys": unknown,
                              "config": public_config(store.current)})


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def healthz(request: web.Request) -> web.Response:
    orch = request.app[ORCHESTRATOR]
    settings = request.app[SETTINGS].current
    return web.json_response({"status": "ok", "backend": settings.tts_backend,
                              "active_streams": len(orch.streams)})


def add_admin_routes(app: web.Application) -> None:
    app.router.add_get("/adapters", adapters)
    app.router.add_get("/config", get_config)
    app.router.add_post("/config", post_config)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
