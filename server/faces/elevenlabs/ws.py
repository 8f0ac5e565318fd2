"""ElevenLabs' text-to-speech WebSockets (reference/protocols.md 1.5 and 1.5b).

`GET /v1/text-to-speech/{voice_id}/stream-input`: one utterance per connection. The first
message is `{"text": " "}` (with `voice_settings`, and the API key as `xi-api-key` or
`xi_api_key` when the handshake did not carry it); text pieces follow, `flush: true` speaks
what is buffered now, `{"text": ""}` ends the input. Audio comes back as base64 with per-message
alignment; `{"isFinal": true}` follows the last audio and the server closes the socket.
`try_trigger_generation` is accepted: Morpheus's chunker starts speaking at the first sentence
or clause end anyway.

`GET /v1/text-to-speech/{voice_id}/multi-stream-input`: contexts named by `context_id`, each
its own Morpheus stream, interleaved on one socket; messages out name theirs in `contextId`.
`{"text": ""}` is only a keep-alive here. `close_context` ends a context either way a client
means it, told apart by what came just before it on that context:
- right after a flush that carries no text (`{"flush": true}` or `{"text": "", "flush": true}`)
  it is the end of a turn: the context's audio is finished, then its final message is sent.
  pipecat 1.14 (`on_turn_context_completed`: flush, close), LiveKit's plugin 1.8.9 (end of
  `_sentence_stream_task`: empty text with flush, close) and ElevenLabs' multi-context guide
  ("flush and close this context") all end a turn this way;
- otherwise (after text, after a flush riding on a text piece, which LiveKit sends for every
  sentence, a second time, or with `immediate: true`) it is an interruption: all three send
  `close_context` alone when the user barges in, and throw away what arrives for the context.
  Its synthesis stops at once (Stream.interrupt), the other contexts untouched.
`close_socket` stops every context, sends their finals and closes.

Both check the API key themselves (server.security.DEFERRED_AUTH): from the handshake (header
or query) or the first message; a wrong one gets an error message and close code 1008. A bad
query is a 422 before the upgrade; a bad message an error naming the field, then 1008. A client
that goes away stops its streams. These faces only translate: pacing, cancellation and
failover are the orchestrator's.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
)

from adapters.errors import BadRequest
from dsp.textfront import LexiconEntry
from server.app_keys import METRICS, ORCHESTRATOR, SETTINGS
from server.core.stream import StreamSpec
from server.deliveries import DELIVERIES, Playout
from server.faces.elevenlabs.api import (
    Locator,
    SpeechQuery,
    VoiceSettings,
    detail_error,
    error_response,
    from_validation,
    key_error,
    stream_spec,
    ws_error,
)
from server.faces.elevenlabs.context import Context
from server.faces.elevenlabs.dictionaries import DICTIONARIES
from server.faces.elevenlabs.formats import OutputFormat, parse_output_format
from server.faces.sockets import WS_SOCKETS
from server.faces.writes import closer, send_within
from server.security import key_ok, presented_key

log = logging.getLogger("morpheus.elevenlabs")

MAX_CONTEXTS = 8  # open contexts per multi-stream socket (ElevenLabs allows 5)
MAX_MESSAGE_BYTES = 1024 * 1024
DEFAULT_CONTEXT = "default"  # a multi-stream message that names no context
# How stream-input closes after its utterance: bad text is the client's, a failure the engine's.
END_CODES = {"bad_request": WSCloseCode.POLICY_VIOLATION, "failed": WSCloseCode.INTERNAL_ERROR}


class WsQuery(SpeechQuery):
    inactivity_timeout: int = Field(20, ge=1, le=180)  # seconds without a message


class GenerationConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    chunk_length_schedule: list[StrictInt] | None = Field(None, max_length=64)


class WsMessage(BaseModel):
    """Any client message of either socket; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    text: StrictStr | None = None
    try_trigger_generation: StrictBool | None = None
    flush: StrictBool | None = None
    voice_settings: VoiceSettings | None = None
    generation_config: GenerationConfig | None = Field(
        None, validation_alias=AliasChoices("generation_config", "generator_config"))
    context_id: StrictStr | None = Field(None, max_length=256)
    close_context: StrictBool | None = None
    close_socket: StrictBool | None = None
    immediate: StrictBool | None = None
    api_key: StrictStr | None = Field(
        None, validation_alias=AliasChoices("xi-api-key", "xi_api_key", "api_key"))
    pronunciation_dictionary_locators: list[Locator] | None = Field(None, max_length=3)
    authorization: StrictStr | None = None

    def key(self) -> str | None:
        if self.api_key:
            return self.api_key
        auth = self.authorization or ""
        return auth[7:].strip() if auth[:7].lower() == "bearer " else None


class SocketClosed(Exception):
    """The face closed the socket (error, end of the utterance, close_socket)."""


class ElevenLabsSocket:
    """One connection of either kind: its settings, its contexts, one send lock."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, query: WsQuery,
                 fmt: OutputFormat, *, multi: bool) -> None:
        self.request = request
        self.ws = ws
        self.query = query
        self.format = fmt
        self.multi = multi
        self.orch = request.app[ORCHESTRATOR]
        self.settings = request.app[SETTINGS].current
        self.contexts: dict[str | None, Context] = {}
        self._lock = asyncio.Lock()
        self._authorized = key_ok(self.settings, presented_key(request))
        self._key_presented = presented_key(request) is not None
        self._first = True
        self._ended = asyncio.Event()  # stream-input: the utterance is over
        self._end_code: int = WSCloseCode.OK
        self.playout = Playout()  # ElevenLabs clients report no playback: the wall clock

    async def send(self, msg: dict[str, Any]) -> None:
        if self.ws.closed:
            return
        async with self._lock:
            try:
                await send_within(self.ws.send_str(json.dumps(msg)),
                                  self.settings.write_timeout_s, self.request.app[METRICS],
                                  closer(self.request))
            except ConnectionError:
                pass  # gone, or took nothing for WRITE_TIMEOUT_S: the receive loop ends

    async def fail(self, msg: dict[str, Any], code: int = WSCloseCode.POLICY_VIOLATION) -> None:
        await self.send(msg)
        raise SocketClosed(code)

    def _spec(self, voice_settings: VoiceSettings | None,
              lexicon: tuple[LexiconEntry, ...] = ()) -> StreamSpec:
        q = self.query
        return stream_spec(voice_id=self.request.match_info["voice_id"], model_id=q.model_id,
                           voice_settings=voice_settings, language=q.language_code,
                           latency=q.optimize_streaming_latency, transport="ws",
                           incremental=True, normalization=q.apply_text_normalization,
                           lexicon=lexicon)

    def _context(self, context_id: str | None, msg: WsMessage) -> Context:
        lexicon = self.request.app[DICTIONARIES].entries(msg.pronunciation_dictionary_locators)
        voice_settings = msg.voice_settings

        def spec_for(vs: VoiceSettings | None) -> StreamSpec:
            return self._spec(vs, lexicon)

        return Context(context_id, orch=self.orch, send=self.send, spec_for=spec_for,
                       fmt=self.format, voice_settings=voice_settings,
                       max_chars=self.settings.max_input_chars, on_end=self._context_ended,
                       on_audio=self.playout.sent)

    def _context_ended(self, ctx: Context) -> None:
        if self.contexts.get(ctx.id) is ctx:
            del self.contexts[ctx.id]
        if not self.multi:
            self._end_code = END_CODES.get(ctx.outcome, WSCloseCode.OK)
            self._ended.set()

    # --- messages -----------------------------------------------------------------------

    async def handle(self, raw: str) -> None:
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("a message must be a JSON object")
            msg = WsMessage.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err.get("loc", ())) or None
            await self.fail(ws_error("invalid_message", f"{field}: {err.get('msg')}",
                                     field=field))
            return
        except ValueError as e:
            await self.fail(ws_error("invalid_message", f"message is not a JSON object: {e}"))
            return
        first, self._first = self._first, False
        if first and not self._authorized:
            if not self._key_presented and key_ok(self.settings, msg.key()):
                self._authorized = True
            else:
                await self.fail(ws_error("invalid_api_key", "a valid API key is required: the "
                                         "xi-api-key header or the first message's xi-api-key"))
        try:
            await (self._multi(msg) if self.multi else self._single(msg, first))
        except BadRequest as e:
            error = ws_error("invalid_request", str(e), field=e.field,
                             context_id=(msg.context_id or DEFAULT_CONTEXT) if self.multi
                             else None)
            if not self.multi:
                await self.fail(error)
            await self.send(error)  # one context's trouble: the others go on

    async def _single(self, msg: WsMessage, first: bool) -> None:
        ctx = self.contexts.get(None)
        if ctx is None:
            if not first or self._ended.is_set():
                return  # after the end of input: nothing more is taken
            ctx = self.contexts[None] = self._context(None, msg)
        if ctx.input_closed:
            return  # after {"text": ""} the utterance only finishes
        text = msg.text
        if text == "" and not msg.flush:  # {"text": "", "flush": true} keeps the socket open
            await ctx.end_input()
            return
        if text and not (first and text == " "):  # the first " " only opens the stream
            ctx.push(text)
        if msg.flush:
            ctx.flush()

    async def _multi(self, msg: WsMessage) -> None:
        if msg.close_socket:
            await self.close_all()
            raise SocketClosed(WSCloseCode.OK)
        cid = msg.context_id
        if cid is None and not msg.text:
            return  # a keep-alive, or a flush/close for no context
        cid = cid or DEFAULT_CONTEXT
        ctx = self.contexts.get(cid)
        if msg.close_context:
            if ctx is not None:
                await self._close_context(ctx, immediate=bool(msg.immediate))
            return
        speaks = bool(msg.text and msg.text != " ")  # " " opens a context, "" keeps it alive
        if ctx is not None and ctx.input_closed:
            if not speaks:
                return  # a keep-alive (pipecat sends them) while the context finishes
            raise BadRequest(f"context {cid!r} is closed and still finishing; use a new "
                             "context_id", field="context_id")
        if ctx is None:
            if msg.text is None or msg.text == "":
                return  # a flush or keep-alive for a context that is not open
            # Interrupted contexts are stopping (their finals are on the way): only live ones
            # count, so a client that barges in quickly never meets zombies of its own.
            if sum(not c.cancelled for c in self.contexts.values()) >= MAX_CONTEXTS:
                raise BadRequest(f"at most {MAX_CONTEXTS} open contexts per connection "
                                 "(ElevenLabs allows 5); close one first", field="context_id")
            ctx = self.contexts[cid] = self._context(cid, msg)
        if speaks and msg.text:
            try:
                ctx.push(msg.text)
            except BadRequest:
                await ctx.cancel()  # its text would be cut short: better not spoken at all
                raise
        if msg.flush:
            ctx.flush(with_text=speaks)

    async def _close_context(self, ctx: Context, *, immediate: bool) -> None:
        if immediate or ctx.input_closed or not ctx.turn_ended:
            await ctx.cancel()  # an interruption: stop the engine now
        else:
            await ctx.end_input()  # the end of a turn: finish what was flushed

    async def close_all(self) -> None:
        """Stop every context now (they send their finals) and wait for their tasks."""
        contexts = list(self.contexts.values())
        for ctx in contexts:
            await ctx.cancel()
        await self.wait(contexts)

    async def end_all(self) -> None:
        """Inactivity: end every context's input; their audio finishes."""
        contexts = list(self.contexts.values())
        for ctx in contexts:
            await ctx.end_input()
        await self.wait(contexts)

    @staticmethod
    async def wait(contexts: list[Context]) -> None:
        tasks = [c.task for c in contexts if c.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- the drain (server/deliveries.py) ------------------------------------------------

    transport = "elevenlabs"

    def owes(self) -> bool:
        """A context is still speaking, or what was sent has not had time to play."""
        if self.ws.closed:
            return False
        return any(not c.done for c in self.contexts.values()) or self.playout.remaining_ms() > 0

    async def close_for_shutdown(self, reason: str) -> None:
        """Each context still speaking is told why and ends with its final; then 1001."""
        if self.ws.closed:
            return
        for ctx in list(self.contexts.values()):
            if not ctx.done:
                await self.send(ws_error("server_shutdown", f"{reason}; reconnect to continue",
                                         context_id=ctx.id))
        await self.close_all()
        await self.ws.close(code=WSCloseCode.GOING_AWAY, message=reason.encode())

    # --- the connection -----------------------------------------------------------------

    async def run(self) -> int:
        """Serve until the client or the face closes; returns the close code."""
        if self._key_presented and not self._authorized:
            await self.send(ws_error("invalid_api_key", "the API key is not valid",
                                     field="xi-api-key"))
            return WSCloseCode.POLICY_VIOLATION
        receiver = asyncio.create_task(self._receive())
        ended = asyncio.create_task(self._ended.wait())
        try:
            done, _ = await asyncio.wait({receiver, ended}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                return receiver.result()
            return self._end_code  # stream-input: the utterance is over
        finally:
            for task in (receiver, ended):
                task.cancel()
            await asyncio.gather(receiver, ended, return_exceptions=True)
            for ctx in list(self.contexts.values()):  # client gone or socket closing
                await ctx.cancel()
            await self.wait(list(self.contexts.values()))

    async def _receive(self) -> int:
        timeout = float(self.query.inactivity_timeout)
        while True:
            try:
                msg = await self.ws.receive(timeout=timeout)
            except asyncio.TimeoutError:
                await self.end_all()
                return WSCloseCode.OK
            if msg.type == WSMsgType.TEXT:
                try:
                    await self.handle(msg.data)
                except SocketClosed as closed:
                    return int(closed.args[0])
            elif msg.type == WSMsgType.BINARY:
                await self.send(ws_error("invalid_message", "send JSON text messages"))
                return WSCloseCode.UNSUPPORTED_DATA
            else:  # CLOSE, CLOSING, CLOSED, ERROR: the client is gone
                return WSCloseCode.OK


async def _serve(request: web.Request, *, multi: bool) -> web.StreamResponse:
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_MESSAGE_BYTES)
    if not ws.can_prepare(request).ok:  # a plain request: no first message can carry a key
        return key_error(request) or detail_error(
            426, "upgrade_required", "this route is a WebSocket: connect with ws:// or wss://",
            headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    try:
        query = WsQuery.model_validate(dict(request.query))
        fmt = parse_output_format(query.output_format)
    except ValidationError as e:
        return from_validation(e, "query")
    except BadRequest as e:
        return error_response(e)
    sockets = request.app[WS_SOCKETS]  # shared with the native socket: one cap, one shutdown
    settings = request.app[SETTINGS].current
    if len(sockets) >= settings.ws_max_connections:
        request.app[METRICS].refused.labels("ws_connections").inc()
        return detail_error(503, "too_many_connections", "too many WebSocket connections "
                            f"(WS_MAX_CONNECTIONS={settings.ws_max_connections}); retry later",
                            headers={"Retry-After": "5"})
    await ws.prepare(request)
    sockets.add(ws)
    sock = ElevenLabsSocket(request, ws, query, fmt, multi=multi)
    request.app[DELIVERIES].add(sock)
    code: int = WSCloseCode.OK
    try:
        code = await sock.run()
    finally:
        sockets.discard(ws)
        request.app[DELIVERIES].discard(sock)
        await ws.close(code=code)
    return ws


async def stream_input(request: web.Request) -> web.StreamResponse:
    return await _serve(request, multi=False)


async def multi_stream_input(request: web.Request) -> web.StreamResponse:
    return await _serve(request, multi=True)


__all__ = ["multi_stream_input", "stream_input"]
