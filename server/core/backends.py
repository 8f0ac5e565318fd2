"""Live adapter instances per backend, rebuilt when their own settings change."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
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
    "wyoming": ("wyoming_tts_", "upstream_"),
    "command": ("command_tts", "upstream_read_timeout_s"),
    "elevenlabs": ("elevenlabs_", "upstream_"),
    "openai_tts": ("openai_tts_", "upstream_"),
    "xtts": ("xtts_", "upstream_"),
    "coqui": ("coqui_", "upstream_"),
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
        self._last_used: dict[str, float] = {}
        self.unloaded: set[str] = set()  # unloaded for idleness: loads again on demand

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
        self._last_used[name] = time.monotonic()
        self.unloaded.discard(name)
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

    def upstream_snapshots(self) -> list[tuple[str, dict[str, Any]]]:
        """(backend, upstream state) for every enabled backend that has upstreams."""
        out = []
        for name in self._settings.enabled_backends:
            if not self.known(name):
                continue
            try:
                out += [(name, up) for up in self.instance(name).upstreams()]
            except MorpheusError:
                continue  # not importable: /adapters says why
        return out

    def warmed(self, name: str) -> bool:
        """Whether `name`'s current adapter finished its warmup without error (no I/O)."""
        cached = self._instances.get(name)
        if cached is None:
            return False
        task = self._warm.get(id(cached[1]))
        return task is not None and task.done() and not task.cancelled() \
            and task.exception() is None

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

    async def unload_idle(self, idle_s: float, busy: set[str]) -> list[str]:
        """Close the adapters of backends unused for `idle_s` (none of `busy`'s streams use
        them): their models leave memory, and the next request loads them again. Unused
        counts from the last look that saw a stream on it, not from when its last stream
        started (a minute-long stream must not be followed by an unload at once)."""
        now = time.monotonic()
        for name in busy:
            self._last_used[name] = now
        gone = [name for name, (_, adapter) in self._instances.items()
                if name not in busy and now - self._last_used.get(name, now) >= idle_s
                and self.warmed(name)]
        for name in gone:
            _, adapter = self._instances.pop(name)
            self._warm.pop(id(adapter), None)
            self.unloaded.add(name)
            log.info("unloading %s after %.0f s unused (IDLE_UNLOAD_S)", name, idle_s)
            try:
                await adapter.aclose()
            except Exception:
                log.exception("closing %s", name)
        return gone

    async def watch_idle(self, busy: Callable[[], set[str]]) -> AsyncIterator[None]:
        """cleanup_ctx body: unload idle backends while the app runs (IDLE_UNLOAD_S)."""
        async def loop() -> None:
            while True:
                idle_s = self._settings.idle_unload_s
                await asyncio.sleep(min(5.0, idle_s / 4) if idle_s else 5.0)
                if idle_s:
                    await self.unload_idle(idle_s, busy())

        task = asyncio.create_task(loop(), name="idle-unload")
        yield
        task.cancel()

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
