"""Any Wyoming TTS server (Home Assistant's protocol, `wyoming` 1.10.x; checked against
wyoming-piper 2.5.2). WYOMING_TTS_URI is `tcp://host:port`; a comma list is a pool of
upstreams (least outstanding first, backoff and probes: adapters/upstream/pooled.py).

- Voices come from `describe` -> `info`: the installed voices of the first installed TTS
  program, one voice per speaker (`<voice>:<speaker>`) for a multi-speaker voice, each with
  its language (the capabilities are fixed: what a server offers belongs to its voices).
- A segment is one `synthesize` on a connection of its own; audio-chunks are yielded as they
  arrive, at the rate audio-start and each chunk state. Connections are not kept alive between
  requests: Home Assistant and wyoming-bench open one per request, and wyoming-piper keeps
  per-connection state (a connection that once streamed ignores later plain `synthesize`).
- Incremental streams (WebSocket, WebRTC) get a session when the server advertises
  `supports_synthesize_streaming`: one connection for the whole Morpheus stream, each segment
  one `synthesize-start` / `synthesize-chunk` / `synthesize-stop` round whose audio ends at
  `synthesize-stopped`. A round per segment because of how wyoming-piper maps text to audio:
  it cuts the streamed text into sentences itself, sends one audio-start..audio-stop cycle per
  completed sentence, and holds an unfinished sentence until more text or `synthesize-stop`
  arrives. The orchestrator's segments are often clauses (a short first segment) and it waits
  for a segment's audio before sending the next, so only `synthesize-stopped` can say where a
  segment's audio ends; an audio-stop inside a round is a sentence boundary, not the end.
- Cancelling closes the connection at once; `error` events, refusals, timeouts and bytes that
  are not Wyoming events raise typed errors (adapters/wyoming/client.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

from wyoming.audio import AudioStop
from wyoming.error import Error
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

from adapters.base import (
    AdapterSession,
    AudioChunk,
    Capabilities,
    Health,
    TTSAdapter,
    TTSInput,
    Voice,
)
from adapters.errors import BackendUnavailable, MalformedAudio, TTSError
from adapters.upstream.pool import Timeouts, Upstream
from adapters.upstream.pooled import PROBE_TIMEOUT_S, PooledUpstreams, UpstreamConfig
from adapters.wyoming.client import Connection, check_uri, error_from, reply_audio

WARMUP_TEXT = "Hi."  # makes the server load its voice before the first real request
NOT_SET = "WYOMING_TTS_URI is not set (tcp://host:port)"
AUDIO_STOP = AudioStop().event().type
STOPPED = SynthesizeStopped().event().type


class WyomingAdapter(TTSAdapter):
    """Segments spoken by a pool of Wyoming servers; see the module docstring."""

    name = "wyoming"
    capabilities = Capabilities(
        native_rate_hz=22_050, streams_sub_sentence=False, chunk_unit="segment",
        languages=("en",), native_speed=False,  # Wyoming has no speed: the pipeline stretches
    )

    def __init__(self, upstream: UpstreamConfig, voice: str | None) -> None:
        self._voice = voice or None
        self._timeouts = upstream.timeouts
        # connect + describe within the probe's time, or say why not
        self._probe_timeouts = Timeouts(min(self._timeouts.connect_s, PROBE_TIMEOUT_S),
                                        min(self._timeouts.read_s, PROBE_TIMEOUT_S))
        self.pooled = PooledUpstreams(self.name, [check_uri(a) for a in upstream.addresses],
                                      probe=self._probe, backoff_s=upstream.backoff_s,
                                      missing=NOT_SET)
        self._voices: list[Voice] = []
        self._targets: dict[str, SynthesizeVoice] = {}
        self._described: Any = None  # the voice list those were built from
        self._streaming = False

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> WyomingAdapter:
        return cls(UpstreamConfig.from_options(options, "wyoming_tts_uri"),
                   voice=options["wyoming_tts_voice"])

    # -- discovery

    async def describe(self, address: str, timeouts: Timeouts | None = None) -> None:
        """Ask one server what it offers; its voices become this adapter's voice list."""
        conn = await Connection.open(address, timeouts or self._timeouts, self.name)
        try:
            await conn.send(Describe())
            while not Info.is_type((event := await conn.receive()).type):
                if Error.is_type(event.type):
                    raise error_from(event, address, self.name)
        finally:
            conn.abort()
        try:
            self._learn(event.data, address)
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise MalformedAudio(f"{address} sent an info event we cannot read: {e!r}",
                                 backend=self.name) from e

    def _learn(self, info: dict[str, Any], address: str) -> None:
        # Read from the event's JSON as it is: the wyoming dataclasses (Info.from_event) spend
        # 0.2-0.5 s of CPU, on the event loop, on wyoming-piper's ~170-voice catalogue.
        program = next((p for p in info.get("tts") or () if p.get("installed", True)), None)
        if program is None:
            raise BackendUnavailable(f"{address} offers no installed TTS program",
                                     backend=self.name)
        self._streaming = bool(program.get("supports_synthesize_streaming"))
        if program.get("voices") == self._described:
            return  # the same list again (every health check asks): nothing to rebuild
        self._described = program.get("voices")
        voices: list[Voice] = []
        targets: dict[str, SynthesizeVoice] = {}
        for v in program.get("voices") or ():
            if not v.get("installed", True):
                continue
            name, description = str(v["name"]), str(v.get("description") or "")
            language = str((v.get("languages") or ["en"])[0]).replace("_", "-")
            speakers: list[str | None] = [str(s["name"]) for s in v.get("speakers") or ()]
            for speaker in speakers or [None]:
                vid = name if speaker is None else f"{name}:{speaker}"
                targets[vid] = SynthesizeVoice(name=name, speaker=speaker)
                voices.append(Voice(id=vid, name=speaker or description or name,
                                    language=language, description=description,
                                    backend=self.name))
        self._voices, self._targets = voices, targets

    async def _probe(self, address: str) -> str | None:
        """None when the server answers describe with a TTS program, else why not."""
        try:
            await self.describe(address, self._probe_timeouts)
        except TTSError as e:
            return str(e)
        return None

    # -- lifecycle

    async def warmup(self) -> None:
        pool = self.pooled.require()
        results = await asyncio.gather(*(self._warm(up) for up in pool.upstreams),
                                       return_exceptions=True)
        if all(isinstance(r, BaseException) for r in results):
            raise BackendUnavailable("; ".join(str(r) for r in results), backend=self.name)

    async def _warm(self, up: Upstream) -> None:
        pool = self.pooled.require()
        try:
            await self.describe(up.address)
            req = TTSInput(WARMUP_TEXT)
            async with aclosing(self._synthesize(up, req.text, self._target(req))) as audio:
                async for _ in audio:
                    pass
        except TTSError as e:
            pool.failed(up, e)
            raise

    async def health(self) -> Health:
        return await self.pooled.health("Wyoming, WYOMING_TTS_URI")

    def voices(self) -> list[Voice]:
        return list(self._voices)

    def default_voice(self) -> str | None:
        return self._voice  # None: the server's own default voice

    def upstreams(self) -> list[dict[str, Any]]:
        return self.pooled.snapshot()

    def open_session(self) -> AdapterSession | None:
        if self.pooled.pool is None or not self._streaming:
            return None
        return WyomingSession(self)

    async def aclose(self) -> None:
        await self.pooled.aclose()

    # -- synthesis

    def _target(self, req: TTSInput) -> SynthesizeVoice | None:
        vid = req.voice or self._voice
        if vid:
            return self._targets.get(vid) or SynthesizeVoice(name=vid)
        if req.language:
            return SynthesizeVoice(language=req.language)
        return None  # the server's default voice

    async def synth_stream(self, req: TTSInput) -> AsyncIterator[AudioChunk]:
        target = self._target(req)
        async with aclosing(self.pooled.stream(
                lambda up: self._synthesize(up, req.text, target))) as audio:
            async for chunk in audio:
                yield chunk

    async def _synthesize(self, up: Upstream, text: str,
                          target: SynthesizeVoice | None) -> AsyncGenerator[AudioChunk, None]:
        conn = await Connection.open(up.address, self._timeouts, self.name)
        try:
            await conn.send(Synthesize(text=text, voice=target))
            async with aclosing(reply_audio(conn, AUDIO_STOP, self.name)) as audio:
                async for chunk in audio:
                    yield chunk
        finally:
            conn.abort()  # done, failed or cancelled: the server sees us go at once


class WyomingSession(AdapterSession):
    """One connection for a whole Morpheus stream; a streaming round per segment."""

    def __init__(self, adapter: WyomingAdapter) -> None:
        self._adapter = adapter
        self._conn: Connection | None = None

    async def synth_stream(self, req: TTSInput) -> AsyncIterator[AudioChunk]:
        a = self._adapter
        prefer = self._conn.address if self._conn is not None else None
        async with aclosing(a.pooled.stream(lambda up: self._round(up, req),
                                            prefer=prefer)) as audio:
            async for chunk in audio:
                yield chunk

    async def _round(self, up: Upstream, req: TTSInput) -> AsyncGenerator[AudioChunk, None]:
        a = self._adapter
        conn = self._conn
        if conn is not None and (conn.address != up.address or conn.closed_by_peer):
            conn.abort()
            conn = self._conn = None
        if conn is None:
            conn = self._conn = await Connection.open(up.address, a._timeouts, a.name)
        finished = False
        try:
            await conn.send(SynthesizeStart(voice=a._target(req)), SynthesizeChunk(req.text),
                            SynthesizeStop())
            async with aclosing(reply_audio(conn, STOPPED, a.name)) as audio:
                async for chunk in audio:
                    finished = chunk.is_final
                    yield chunk
        finally:
            if not finished:  # cancelled or failed mid-round: the connection's state is unknown
                conn.abort()
                self._conn = None

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()


__all__ = ["WyomingAdapter", "WyomingSession"]
