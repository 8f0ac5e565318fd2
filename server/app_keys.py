"""Typed keys for the state an app instance holds (no module-level app state).

The values are typed Any: naming their classes here would import the modules that use these
keys back (server.core, server.voices); each reader knows what it reads."""

from __future__ import annotations

from typing import Any

from aiohttp import web

SETTINGS: web.AppKey[Any] = web.AppKey("settings")  # server.settings_store.SettingsStore
BACKENDS: web.AppKey[Any] = web.AppKey("backends")  # server.core.backends.BackendPool
ORCHESTRATOR: web.AppKey[Any] = web.AppKey("orchestrator")  # server.core.orchestrator
METRICS: web.AppKey[Any] = web.AppKey("metrics")  # server.metrics.Metrics
VOICES: web.AppKey[Any] = web.AppKey("voices")  # server.voices.library.VoiceLibrary
