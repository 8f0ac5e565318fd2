"""Typed keys for the state an app instance holds (no module-level app state)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    pass

SETTINGS = web.AppKey("settings", "SettingsStore")
BACKENDS = web.AppKey("backends", "BackendPool")
ORCHESTRATOR = web.AppKey("orchestrator", "Orchestrator")
METRICS = web.AppKey("metrics", "Metrics")
VOICES = web.AppKey("voices", "VoiceLibrary")  # server/voices: the stored voices
