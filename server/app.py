"""The app factory: everything an app needs is built here and held under typed keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from server.admin import add_admin_routes
from server.app_keys import BACKENDS, METRICS, ORCHESTRATOR, SETTINGS, VOICES
from server.config import Settings
from server.core.backends import BackendPool
from server.core.idle import IdleGiveBack
from server.core.orchestrator import Orchestrator
from server.deliveries import DELIVERIES, Deliveries, track_http
from server.faces.openai.legacy import add_legacy_routes
from server.faces.openai.speech import add_speech_routes
from server.faces.openai.voices import add_voice_routes
from server.guard import add_cors_headers, guard
from server.metrics import Metrics
from server.settings_store import SettingsStore
from server.voices.library import VoiceLibrary

MAX_BODY_BYTES = 8 * 1024 * 1024  # MAX_INPUT_CHARS of text, JSON-escaped, fits with room


def create_app(settings: Settings, *, env_file: Path | None = None, warm: bool = True,
               flags: dict[str, Any] | None = None) -> web.Application:
    """Build a Morpheus app. `env_file` is watched for hot reload when given; `flags` are the
    command-line settings, a layer every reload keeps."""
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[guard, track_http])
    app.on_response_prepare.append(add_cors_headers)
    store = SettingsStore(settings, env_file=env_file, flags=flags)
    pool = BackendPool(settings)
    store.on_change(pool.update_settings)
    metrics = Metrics()
    metrics.init_backends(settings.enabled_backends, settings.fallback_backend)
    store.on_change(lambda s: metrics.init_backends(s.enabled_backends, s.fallback_backend))
    metrics.track_upstreams(pool.upstream_snapshots)
    metrics.watch_decoders(pool.live)
    app[SETTINGS] = store
    app[BACKENDS] = pool
    app[METRICS] = metrics
    library = VoiceLibrary(store, pool)
    app[VOICES] = library
    app[ORCHESTRATOR] = Orchestrator(store, pool, metrics, voices=library)
    app[DELIVERIES] = Deliveries()

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await library.start()  # what a crash left in VOICES_DIR; which engines clone
        if warm:  # load the active backend before the first request, not during it
            try:
                await pool.ready(store.current.tts_backend)
            except Exception:  # reported by /adapters; the server still starts
                pass
        yield
        await app[ORCHESTRATOR].aclose()
        await pool.aclose()

    app.cleanup_ctx.append(lifecycle)
    orch = app[ORCHESTRATOR]
    app.cleanup_ctx.append(lambda _app: pool.watch_idle(
        lambda: {s.backend for s in orch.streams.values()}))
    deliveries = app[DELIVERIES]
    idle = IdleGiveBack(lambda: (orch.totals["requests"], deliveries.connections()),
                        lambda: bool(orch.streams))
    app.cleanup_ctx.append(lambda _app: idle.watch())
    if env_file is not None:
        app.cleanup_ctx.append(lambda _app: store.watch())
    add_speech_routes(app)
    add_legacy_routes(app)
    add_voice_routes(app)
    add_admin_routes(app)
    _add_optional_routes(app)
    return app


def _add_optional_routes(app: web.Application) -> None:
    """Transports and UI, each in its own module."""
    from server.faces.elevenlabs.catalog import is_elevenlabs_client, list_models
    from server.faces.elevenlabs.http import add_elevenlabs_routes
    from server.faces.openai.speech import models
    from server.faces.realtime.webrtc import webrtc_ctx, webrtc_offer
    from server.faces.realtime.ws import speech_ws
    from server.faces.sockets import WS_SOCKETS, close_speech_sockets
    from server.faces.wyoming.face import add_wyoming
    from server.web_routes import add_web_routes

    async def either_models(request: web.Request) -> web.Response:
        """GET /v1/models is a path of both APIs: ElevenLabs clients get its bare array."""
        if is_elevenlabs_client(request):
            return await list_models(request)
        return await models(request)

    app.router.add_get("/v1/models", either_models)
    app[WS_SOCKETS] = set()
    app.on_shutdown.append(close_speech_sockets)
    app.router.add_get("/v1/audio/speech/ws", speech_ws)
    app.router.add_post("/webrtc/offer", webrtc_offer)
    app.cleanup_ctx.append(webrtc_ctx)
    add_elevenlabs_routes(app)
    add_web_routes(app)
    add_wyoming(app)  # the Wyoming server (Home Assistant) when WYOMING_URI is set
