"""Operator routes: /adapters, /config (hot, validated), /metrics, /healthz."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from adapters import registry
from adapters.base import Health
from adapters.errors import BadRequest, MorpheusError
from server.app_keys import BACKENDS, METRICS, ORCHESTRATOR, SETTINGS
from server.config import FILESYSTEM, LOCAL_ONLY, field_names, marked
from server.errors import (
    MalformedBody,
    from_morpheus,
    from_validation,
    json_error,
    read_json_object,
)
from server.security import remote_write_refused

# Every setting that holds a credential is masked in GET /config (and never logged).
SECRET_KEYS = {k for k in field_names() if k == "api_key" or k.endswith("_api_key")}
PATH_KEYS = marked(FILESYSTEM)
URL_SUFFIXES = ("_base_url", "_url", "_uri")
LOCAL_ONLY_KEYS = marked(LOCAL_ONLY)


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
    settings = store.current
    if remote_write_refused(settings, request.remote):
        return json_error(403, "POST /config from another machine needs API_KEY to be set",
                          type_="forbidden")
    try:
        body = {key: network_setting(settings, key.lower(), value)
                for key, value in (await read_json_object(request)).items()}
    except (MalformedBody, BadRequest) as e:
        return from_morpheus(e)
    cleared = keys_left_behind(settings, body)
    body.update(dict.fromkeys(cleared))
    try:  # validated as a whole: names known, the active and fallback backends usable
        unknown = store.update(body)
    except ValidationError as e:
        return from_validation(e)
    return web.json_response({"status": "ok", "unknown_keys": unknown, "cleared_keys": cleared,
                              "config": public_config(store.current)})


def keys_left_behind(settings: Any, body: dict[str, Any]) -> list[str]:
    """Credentials that must not follow an upstream address changed over the network: a
    request that points a backend elsewhere and does not send its API key again clears it,
    so nobody who can reach /config can redirect a stored key to a host of their choosing."""
    sent = {k.lower(): v for k, v in body.items()}
    cleared = []
    for key, value in sent.items():
        if not key.endswith(URL_SUFFIXES) or value == getattr(settings, key, value):
            continue
        prefix = next(key.removesuffix(s) for s in URL_SUFFIXES if key.endswith(s))
        secret = f"{prefix}_api_key"
        if secret in SECRET_KEYS and secret not in sent and getattr(settings, secret, None):
            cleared.append(secret)
    return cleared


def network_setting(settings: Any, key: str, value: Any) -> Any:
    """`value` as it may be set over the network, which may not point the server at arbitrary
    files or commands: LOCAL_ONLY settings are refused; FILESYSTEM ones must resolve to a place
    under MODELS_DIR (a relative path is taken from there) and are stored resolved."""
    if key in LOCAL_ONLY_KEYS:
        raise BadRequest(f"{key} cannot be changed over the network; set it in .env or the "
                         "environment", field=key, status=403)
    if key not in PATH_KEYS or value is None or value == "":
        return value
    if not settings.models_dir:
        raise BadRequest(f"{key} is a path: set MODELS_DIR to allow paths under it to be set "
                         "over the network", field=key, status=403)
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string path", field=key)
    root = Path(settings.models_dir).resolve()
    target = (root / value).resolve()  # a relative path is taken from MODELS_DIR
    if not target.is_relative_to(root):
        raise BadRequest(f"{key} must be under MODELS_DIR ({root})", field=key, status=403)
    return str(target)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def healthz(request: web.Request) -> web.Response:
    orch = request.app[ORCHESTRATOR]
    settings = request.app[SETTINGS].current
    return web.json_response({"status": "ok", "backend": settings.tts_backend,
                              "active_streams": len(orch.streams)})


async def readyz(request: web.Request) -> web.Response:
    """Ready for traffic: not draining, and at least one enabled backend warmed up. Cheap (no
    upstream probes): a balancer or Kubernetes asks every few seconds."""
    orch = request.app[ORCHESTRATOR]
    pool = request.app[BACKENDS]
    settings = request.app[SETTINGS].current
    if orch.draining:
        return web.json_response({"status": "draining", "active_streams": len(orch.streams)},
                                 status=503)
    # A backend unloaded for idleness (IDLE_UNLOAD_S) is ready: it loads on the next request.
    ready = [b for b in settings.enabled_backends
             if pool.enabled(b) and (pool.warmed(b) or b in pool.unloaded)]
    if not ready:
        if pool.known(settings.tts_backend):  # warm it now, so a later probe finds it ready
            asyncio.ensure_future(_try_warm(pool, settings.tts_backend))
        return web.json_response({"status": "warming", "ready_backends": []}, status=503)
    return web.json_response({"status": "ready", "ready_backends": ready,
                              "active_streams": len(orch.streams)})


async def _try_warm(pool: Any, name: str) -> None:
    try:
        await pool.ready(name)
    except MorpheusError:
        pass  # /adapters tells why


def add_admin_routes(app: web.Application) -> None:
    app.router.add_get("/adapters", adapters)
    app.router.add_get("/config", get_config)
    app.router.add_post("/config", post_config)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
