"""The Wyoming face: a Wyoming TTS server (Home Assistant's protocol) inside the Morpheus process.

`WYOMING_URI` (`tcp://host:port` or `unix:///path`) starts it with the app and stops it at
shutdown, closing its connections and their streams. It is built on the `wyoming` package's
server classes; each connection is a `WyomingConnection` (server/wyoming_session.py) that speaks
through the same orchestrator as HTTP and WebSocket, so pacing, admission, failover and
cancellation are the orchestrator's. `describe` lists the active backend's voices as one
installed TTS program, `morpheus`, that supports streaming synthesis, followed by the stored
voices of the voice library (server/voices), which speak on their own backend.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from importlib import metadata
from typing import Any

from aiohttp import web
from wyoming.info import Attribution, Info, TtsProgram, TtsVoice
from wyoming.server import AsyncEventHandler, AsyncServer

from adapters.base import TTSAdapter, Voice
from adapters.errors import MorpheusError
from server.app_keys import BACKENDS, ORCHESTRATOR, SETTINGS, VOICES
from server.core.orchestrator import Orchestrator
from server.deliveries import DELIVERIES
from server.faces.wyoming.events import RequestError, VoiceChoice
from server.faces.wyoming.session import WyomingConnection
from server.voices.store import StoredVoice

log = logging.getLogger("morpheus.wyoming")

PROGRAM = "morpheus"
STOP_GRACE_S = 5.0  # connections still open after this at shutdown are cancelled
UNKNOWN_VOICE = "unknown_voice"
UNKNOWN_SPEAKER = "unknown_speaker"
UNKNOWN_LANGUAGE = "unknown_language"


class WyomingFace:
    """The server's lifetime, its connections (capped) and the voice catalogue they share."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.connections: set[WyomingConnection] = set()
        self.uri: str | None = None
        self._server: AsyncServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def settings(self) -> Any:
        return self.app[SETTINGS].current

    @property
    def orch(self) -> Orchestrator:
        return self.app[ORCHESTRATOR]

    # --- lifetime -----------------------------------------------------------------------

    async def lifespan(self, _app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: listen while the app runs when WYOMING_URI is set."""
        uri = self.settings.wyoming_uri
        if uri:
            await self.start(uri)
        self.app[SETTINGS].on_change(self._settings_changed)
        try:
            yield
        finally:
            await self.aclose()

    async def start(self, uri: str) -> None:
        server = AsyncServer.from_uri(uri)
        await server.start(self._connect)
        self._server, self.uri = server, uri
        log.info("Wyoming server on %s", uri)

    def _settings_changed(self, settings: Any) -> None:
        if (settings.wyoming_uri or None) != self.uri:
            log.warning("WYOMING_URI is now %r; it takes effect at the next start (serving: %s)",
                        settings.wyoming_uri, self.uri or "off")

    def _connect(self, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> AsyncEventHandler:
        return WyomingConnection(reader, writer, self)

    def admit(self, conn: WyomingConnection) -> bool:
        """Count a new connection in; False when WYOMING_MAX_CONNECTIONS are open already."""
        if len(self.connections) >= self.settings.wyoming_max_connections:
            return False
        self.connections.add(conn)
        self.app[DELIVERIES].add(conn)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return True

    def release(self, conn: WyomingConnection) -> None:
        self.connections.discard(conn)
        self.app[DELIVERIES].discard(conn)

    async def aclose(self) -> None:
        """Stop listening, end every connection (its streams stop) and wait for them."""
        server, self._server = self._server, None
        if server is None:
            return
        await server.stop()  # each handler's reader sees EOF; its streams are interrupted
        tasks = list(self._tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        log.info("Wyoming server on %s stopped", self.uri)

    # --- the voice catalogue --------------------------------------------------------------

    async def active_backend(self) -> tuple[str, TTSAdapter | None]:
        """The active backend and its adapter (None when it cannot even be constructed)."""
        name = self.settings.tts_backend
        pool = self.app[BACKENDS]
        try:
            adapter = pool.instance(name)
            if not adapter.voices():  # some engines know their voices only once loaded
                adapter = await pool.ready(name)
        except MorpheusError:
            return name, None
        return name, adapter

    async def info(self) -> Info:
        name, adapter = await self.active_backend()
        voices = [] if adapter is None else [_tts_voice(v, name) for v in adapter.voices()]
        library = self.app[VOICES]
        voices += [_stored_voice(v, library.speaks_on(v)) for v in library.voices()]
        program = TtsProgram(
            name=PROGRAM, attribution=Attribution(name="Morpheus", url=""), installed=True,
            description=f"Morpheus real-time TTS ({name})", version=_version(),
            voices=voices, supports_synthesize_streaming=True)
        return Info(tts=[program])

    async def resolve_voice(self, choice: VoiceChoice | None) -> tuple[str | None, str | None]:
        """(backend, voice id) for a request; None = the backend's default voice. A stored
        voice names no backend: the orchestrator resolves it to its own."""
        if choice is not None and choice.name is not None and choice.speaker is None \
                and self.app[VOICES].knows(choice.name):
            return None, choice.name
        backend, adapter = await self.active_backend()
        if choice is None or adapter is None:
            return backend, None  # a backend that is down: the orchestrator reports it
        voices = adapter.voices()
        if choice.name is not None:
            if voices and all(v.id != choice.name for v in voices):
                listed = ", ".join(v.id for v in voices[:20])
                raise RequestError(UNKNOWN_VOICE, f"no voice {choice.name!r} on backend "
                                   f"{backend!r}; its voices: {listed}")
            if choice.speaker is not None:
                raise RequestError(UNKNOWN_SPEAKER, f"voice {choice.name!r} has no speaker "
                                   f"{choice.speaker!r}: Morpheus voices are single-speaker "
                                   "(leave `speaker` unset)")
            return backend, choice.name
        assert choice.language is not None
        found = _voice_for_language(voices, choice.language, adapter.default_voice())
        if found is None:
            raise RequestError(UNKNOWN_LANGUAGE, f"no voice for language {choice.language!r}"
                               f" on backend {backend!r}")
        return backend, found


def _tts_voice(voice: Voice, backend: str) -> TtsVoice:
    # Home Assistant lists installed voices by language, labelled `description or name`.
    return TtsVoice(
        name=voice.id, attribution=Attribution(name=backend, url=""), installed=True,
        description=voice.name or voice.id, version=None,
        languages=[voice.language] if voice.language else [], speakers=None)


def _stored_voice(voice: StoredVoice, backend: str | None) -> TtsVoice:
    language = voice.language or voice.labels.get("language") or "en"
    return TtsVoice(
        name=voice.voice_id, attribution=Attribution(name=backend or "morpheus", url=""),
        installed=True, description=voice.name, version=None, languages=[language],
        speakers=None)


def _lang(tag: str) -> str:
    return tag.replace("_", "-").lower()


def _voice_for_language(voices: list[Voice], language: str, default: str | None) -> str | None:
    """The default voice if it speaks `language`, else the first that does; `en` matches
    `en-US`, `en_US` matches `en-us`."""
    want = _lang(language)
    ordered = sorted(voices, key=lambda v: v.id != default)
    for same in (lambda tag: tag == want,
                 lambda tag: tag.split("-")[0] == want.split("-")[0]):
        for v in ordered:
            if same(_lang(v.language)):
                return v.id
    return None


def _version() -> str | None:
    try:
        return metadata.version("morpheus-tts")
    except metadata.PackageNotFoundError:
        return None


def add_wyoming(app: web.Application) -> None:
    """Register the face: it listens from startup to shutdown when WYOMING_URI is set."""
    face = WyomingFace(app)
    app[WYOMING] = face
    app.cleanup_ctx.append(face.lifespan)


WYOMING = web.AppKey("wyoming", WyomingFace)

__all__ = ["PROGRAM", "WYOMING", "WyomingFace", "add_wyoming"]
