"""One ElevenLabs WebSocket per Morpheus stream, one context per segment.

The connection is `multi-stream-input` (reference/protocols.md 1.5b): every segment opens a
context, sends its text with `flush`, and closes the context, so the upstream finishes the
segment's audio and then says so with `isFinal` for that context. (`stream-input` has no such
marker after a flush: the end of a segment's audio could only be guessed.) The connection
stays open between segments and closes with the stream (`close_socket`).

Alignment (`chars`, `charStartTimesMs`, `charDurationsMs`, each message's times counted from
where the previous message's characters ended) becomes WordTimings from the segment's first
sample: a word is a run of characters other than spaces, and ends with its message, as
ElevenLabs cuts messages between words.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any, Protocol
from urllib.parse import urlencode

import aiohttp

from adapters.base import PIPELINE_RATE_HZ, AdapterSession, AudioChunk, TTSInput, WordTiming
from adapters.elevenlabs.tail import TailHold
from adapters.errors import (
    BackendTimeout,
    BackendUnavailable,
    EngineError,
    MalformedAudio,
    TTSError,
    UpstreamLost,
)
from adapters.upstream.http_client import status_error
from adapters.upstream.pool import Timeouts, Upstream, is_upstream_fault
from adapters.upstream.pooled import PooledUpstreams

INACTIVITY_TIMEOUT_S = 180  # the most ElevenLabs allows: a listener may pause between turns


class SessionHost(Protocol):
    """What a session needs of the adapter that opened it (adapters/elevenlabs/adapter.py)."""

    model_id: str

    @property
    def name(self) -> str: ...

    @property
    def timeouts(self) -> Timeouts: ...

    @property
    def pooled(self) -> PooledUpstreams: ...

    def ws_session(self) -> aiohttp.ClientSession: ...

    def default_voice(self) -> str | None: ...


class ElevenLabsSession(AdapterSession):
    """A stream's conversation with one upstream: segments in order, one context each."""

    def __init__(self, adapter: SessionHost) -> None:
        self.adapter = adapter
        self._ws: aiohttp.ClientWebSocketResponse[bool] | None = None
        self._up: Upstream | None = None
        self._voice: str | None = None
        self._contexts = 0
        self._dirty = False  # a segment was abandoned: its audio may still be on the wire

    async def _connect(self, voice: str) -> aiohttp.ClientWebSocketResponse[bool]:
        a = self.adapter
        pool = a.pooled.require()
        up = pool.pick()
        base = up.address.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        query = urlencode({"model_id": a.model_id, "output_format": "pcm_24000",
                           "sync_alignment": "true", "inactivity_timeout": INACTIVITY_TIMEOUT_S})
        url = f"{base}/v1/text-to-speech/{voice}/multi-stream-input?{query}"
        err: TTSError | None = None
        try:
            ws = await asyncio.wait_for(
                a.ws_session().ws_connect(url, heartbeat=20.0, max_msg_size=16 * 1024 * 1024),
                a.timeouts.connect_s)
        except aiohttp.WSServerHandshakeError as e:
            err = (status_error(e.status, e.message, url.split("?")[0], a.name)
                   if e.status >= 400 else
                   MalformedAudio(f"{url.split('?')[0]} does not speak the ElevenLabs "
                                  f"WebSocket (HTTP {e.status})", backend=a.name))
        except asyncio.TimeoutError:
            err = BackendTimeout(f"connecting to {url.split('?')[0]} timed out", backend=a.name)
        except (aiohttp.ClientError, OSError) as e:
            err = BackendUnavailable(f"cannot open {url.split('?')[0]}: {e!r}", backend=a.name)
        if err is not None:
            if not is_upstream_fault(err):
                raise err  # 4xx: our request (or key) is wrong; another upstream will not help
            pool.failed(up, err)
            if pool.has_other(up.address):  # the orchestrator retries on another upstream
                raise UpstreamLost(f"{up.address}: {err}", backend=a.name) from err
            raise err
        self._ws, self._up, self._voice, self._dirty = ws, up, voice, False
        up.outstanding += 1
        up.streams += 1
        return ws

    async def synth_stream(self, req: TTSInput) -> AsyncIterator[AudioChunk]:
        a = self.adapter
        a.pooled.require()
        voice = req.voice or a.default_voice() or "default"
        if self._ws is not None and (self._dirty or voice != self._voice or self._ws.closed):
            await self.aclose()
        ws = self._ws or await self._connect(voice)  # typed errors, before any audio
        self._contexts += 1
        cid = f"seg{self._contexts}"
        done = False
        try:
            await ws.send_str(json.dumps({"text": " ", "context_id": cid}))
            await ws.send_str(json.dumps({"text": req.text + " ", "context_id": cid}))
            # The end of a turn as ElevenLabs' guide spells it: a bare flush, then close.
            # (close_context after text alone reads as an interruption on the other side.)
            await ws.send_str(json.dumps({"context_id": cid, "flush": True}))
            await ws.send_str(json.dumps({"context_id": cid, "close_context": True}))
            async for chunk in self._receive(ws, cid):
                done = chunk.is_final
                yield chunk
        except (TTSError, aiohttp.ClientError, ConnectionError) as e:
            err = e if isinstance(e, TTSError) else EngineError(
                f"the ElevenLabs socket failed: {e!r}", backend=a.name)
            up = self._up
            await self._failed(err)
            if (up is not None and is_upstream_fault(err)
                    and a.pooled.require().has_other(up.address)):
                # another upstream speaks the rest (the orchestrator opens a new session)
                raise UpstreamLost(f"{up.address}: {err}", backend=a.name) from e
            if err is e:
                raise
            raise err from e
        finally:
            if not done:
                self._dirty = True  # cancelled or failed: never read this segment's leftovers
                await self._abandon(cid)

    async def _abandon(self, cid: str) -> None:
        """Ask the upstream to stop a segment nobody will hear (a new one reconnects)."""
        ws = self._ws
        if ws is None or ws.closed:
            return
        with contextlib.suppress(ConnectionError, aiohttp.ClientError, RuntimeError):
            await ws.send_str(json.dumps({"context_id": cid, "close_context": True,
                                          "immediate": True}))

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse[bool],
                       cid: str) -> AsyncIterator[AudioChunk]:
        read_s = self.adapter.timeouts.read_s
        tail = TailHold()
        words = _Words()
        while True:
            try:
                msg = await ws.receive(timeout=read_s)
            except asyncio.TimeoutError:
                raise BackendTimeout(f"the ElevenLabs socket sent nothing for {read_s:.0f} s",
                                     backend=self.adapter.name) from None
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise EngineError(f"the ElevenLabs socket closed mid-segment ({msg.type.name} "
                                  f"{ws.close_code})", backend=self.adapter.name)
            data = _json(msg.data, self.adapter.name)
            if data.get("contextId", data.get("context_id", cid)) != cid:
                continue  # an abandoned segment's late audio
            if data.get("error") or (data.get("message") and "audio" not in data):
                raise _upstream_error(data, self.adapter.name)
            if data.get("isFinal"):
                last = tail.finish()
                if not last:
                    raise MalformedAudio("the ElevenLabs socket ended a segment without audio",
                                         backend=self.adapter.name)
                yield AudioChunk(last, PIPELINE_RATE_HZ, is_final=True, words=words.flush())
                return
            pcm = _b64(data.get("audio"), self.adapter.name)
            words.add(data.get("alignment") or data.get("normalizedAlignment"))
            out = tail.push(pcm)
            if out:
                yield AudioChunk(out, PIPELINE_RATE_HZ, words=words.flush())

    async def _failed(self, error: TTSError) -> None:
        if self._up is not None and is_upstream_fault(error):
            self.adapter.pooled.require().failed(self._up, error)
        await self.aclose()

    async def aclose(self) -> None:
        ws, self._ws = self._ws, None
        up, self._up = self._up, None
        if up is not None:
            up.outstanding -= 1
        if ws is not None and not ws.closed:
            try:
                await ws.send_str(json.dumps({"close_socket": True}))
            except (ConnectionError, aiohttp.ClientError):
                pass
            await ws.close()


class _Words:
    """Alignment messages -> WordTimings in ms from the segment's first character."""

    def __init__(self) -> None:
        self._cursor_ms = 0.0  # where the last message's characters ended
        self._done: list[WordTiming] = []

    def add(self, alignment: Any) -> None:
        if not isinstance(alignment, dict):
            return
        chars = alignment.get("chars") or []
        starts = alignment.get("charStartTimesMs") or []
        durations = alignment.get("charDurationsMs") or []
        if not (len(chars) == len(starts) == len(durations)) or not chars:
            return
        origin = self._cursor_ms
        word, w_start, w_end = "", 0.0, 0.0
        for ch, s, d in zip(chars, starts, durations, strict=True):
            start, end = origin + float(s), origin + float(s) + float(d)
            if str(ch).isspace():
                if word:
                    self._done.append(WordTiming(word, w_start, w_end))
                word = ""
            else:
                if not word:
                    w_start = start
                word += str(ch)
                w_end = end
            self._cursor_ms = max(self._cursor_ms, end)
        if word:
            self._done.append(WordTiming(word, w_start, w_end))

    def flush(self) -> tuple[WordTiming, ...]:
        out, self._done = tuple(self._done), []
        return out


def _json(raw: str, backend: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise MalformedAudio(f"the ElevenLabs socket sent non-JSON: {raw[:80]!r}",
                             backend=backend) from e
    if not isinstance(data, dict):
        raise MalformedAudio("the ElevenLabs socket sent a non-object message", backend=backend)
    return data


def _b64(value: Any, backend: str) -> bytes:
    if not value:
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, TypeError, ValueError) as e:
        raise MalformedAudio("the ElevenLabs socket sent audio that is not base64",
                             backend=backend) from e


def _upstream_error(data: dict[str, Any], backend: str) -> TTSError:
    code = str(data.get("error") or "")
    message = str(data.get("message") or code)
    if "api_key" in code or "unauthorized" in code or "authorization" in code:
        return status_error(401, message, "the ElevenLabs socket", backend)
    return EngineError(f"the ElevenLabs socket reported {code or 'an error'}: {message}",
                       backend=backend)


__all__ = ["ElevenLabsSession"]
