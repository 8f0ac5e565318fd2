"""Live adapter instances per backend, rebuilt when their own settings change."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from adapters import registry
from adapters.base import Health, TTSAdapter
from adapters.errors import BackendUnavailable, BadRequest, MorpheusError
from server.config import Settings

log = logging.getLogger("morpheus.backends")

# Which settings keys belong to which backend: a change elsewhere keeps the instance.
OWN_KEYS = {
    "piper": ("piper_",),
    "espeak": ("espeak_",),
    "synthetic": ("synthetic_",),
    "snac_llamacpp": ("snac_", "orpheus_", "llamacpp_", "parallel_streams"),
}



def options_key(name: str, options: dict[str, Any]) -> tuple[Any, ...]:
    prefixes = OWN_KEYS.get(name, ())
    return tuple(sorted((k, repr(v)) for k, v in options.items() if k.startswith(prefixes)))


class BackendPool:
    """Creates, warms and caches adapters; streams keep the instance they started with."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._instances: dict[str, tuple[tuple[Any, ...], TTSAdapter]] = {}
        self._retired: list[TTSAdapter] = []
        self._warm: dict[int, asyncio.Task[None]] = {}
        self._errors: dict[str, str] = {}

    def update_settings(self, settings: Settings) -> None:
        self._settings = settings

    def known(self, name: str) -> bool:
        return name in registry.BACKENDS

    def enabled(self, name: str) -> bool:
        return name in self._settings.enabled_backends

    def validate_name(self, name: str, field: str = "backend") -> str:
        if not self.known(name):
            raise BadRequest(f"unknown backend {name!r}; known: {', '.join(registry.BACKENDS)}",
                             field=field)
        if not self.enabled(name):
            raise BadRequest(f"backend {name!r} is not enabled (BACKENDS)", field=field)
        return name

    def instance(self, name: str) -> TTSAdapter:
        """The current adapter for `name` (constructed lazily; cheap, no I/O)."""
        options = self._settings.model_dump()
        key = options_key(name, options)
        cached = self._instances.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        adapter = registry.create(name, options)
        if cached is not None:
            self._retired.append(cached[1])  # closed at shutdown; running streams keep it
        self._instances[name] = (key, adapter)
        return adapter

    def live(self) -> list[TTSAdapter]:
        """The current instance of each backend built so far (not the retired ones)."""
        return [adapter for _, adapter in self._instances.values()]

    async def ready(self, name: str) -> TTSAdapter:
        """The adapter, warmed up; BackendUnavailable when it cannot be used."""
        adapter = self.instance(name)
        task = self._warm.get(id(adapter))
        if task is None or (task.done() and task.exception() is not None):
            task = asyncio.ensure_future(adapter.warmup())
            self._warm[id(adapter)] = task
        try:
            await asyncio.shield(task)
        except MorpheusError as e:
            self._errors[name] = str(e)
            raise BackendUnavailable(str(e), backend=name) from e
        except Exception as e:
            self._errors[name] = f"warmup failed: {e}"
            raise BackendUnavailable(f"{name} warmup failed: {e}", backend=name) from e
        self._errors.pop(name, None)
        return adapter

    async def health(self, name: str) -> Health:
        try:
            adapter = self.instance(name)
        except MorpheusError as e:
            return Health(False, name, reason=str(e))
        try:
            h = await asyncio.wait_for(adapter.health(), 5)
        except Exception as e:  # a health probe must never take /adapters down
            return Health(False, name, reason=f"health check failed: {e}")
        if h.ready and name in self._errors:
            return Health(False, name, h.loader, h.vram_mb, self._errors[name])
        return h

    async def aclose(self) -> None:
        adapters = [a for _, a in self._instances.values()] + self._retired
        for task in self._warm.values():
            task.cancel()
        for adapter in adapters:
            try:
                await adapter.aclose()
            except Exception:
                log.exception("closing %s", adapter.name)
        self._instances.clear()
        self._retired.clear()
