"""The live Settings: layered build, sparse POST updates, and .env hot reload without restart."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from server.config import (
    ConfigSource,
    Settings,
    ValidationError,
    apply_update,
    build_settings,
    describe_invalid,
)

log = logging.getLogger("morpheus.config")


class SettingsStore:
    """Holds the current Settings; readers take `store.current` once per request (a snapshot)."""

    def __init__(self, settings: Settings, env_file: Path | None = None,
                 environ: dict[str, str] | None = None,
                 flags: dict[str, Any] | None = None) -> None:
        self.current = settings
        self._source = ConfigSource(env_file=env_file, flags=dict(flags or {}), overrides={})
        self._environ = environ
        self._mtime = self._env_mtime()
        self._listeners: list[Callable[[Settings], None]] = []

    def on_change(self, fn: Callable[[Settings], None]) -> None:
        self._listeners.append(fn)

    def _publish(self, settings: Settings) -> None:
        self.current = settings
        for fn in self._listeners:
            fn(settings)

    def update(self, changes: dict[str, Any]) -> list[str]:
        """Apply a validated sparse update (POST /config); returns the unknown keys."""
        new, unknown = apply_update(self.current, changes)
        known = {k.lower(): v for k, v in changes.items() if k not in unknown}
        self._source.overrides.update(known)
        self._publish(new)
        return unknown

    def _env_mtime(self) -> float | None:
        path = self._source.env_file
        try:
            return path.stat().st_mtime if path else None
        except FileNotFoundError:
            return None

    def reload_if_changed(self) -> bool:
        mtime = self._env_mtime()
        if mtime == self._mtime:
            return False
        self._mtime = mtime
        try:
            layered = build_settings(self._source, self._environ)
        except ValidationError as e:  # a bad edit keeps the last good settings
            log.error("ignoring the edit of %s, the settings would not work: %s (keeping the "
                      "last good settings)", self._source.env_file, describe_invalid(e))
            return False
        except Exception as e:  # an unreadable file: the same
            log.error("ignoring invalid .env: %s", e)
            return False
        log.info("reloaded %s", self._source.env_file)
        self._publish(layered)
        return True

    async def watch(self, interval_s: float = 0.5) -> AsyncIterator[None]:
        """cleanup_ctx body: poll .env's mtime while the app runs."""
        async def loop() -> None:
            while True:
                await asyncio.sleep(interval_s)
                self.reload_if_changed()

        task = asyncio.create_task(loop())
        yield
        task.cancel()
