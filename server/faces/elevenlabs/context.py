"""One utterance on an ElevenLabs WebSocket: a Morpheus stream fed with text pieces, and the
task that sends its audio as ElevenLabs messages.

`stream-input` has one context per connection; `multi-stream-input` one per `context_id`. The
stream opens with the first text that is not blank (a context that never gets any ends with
just its final message). Text, flushes and the end of input are applied to the stream in
order; `cancel()` is barge-in: synthesis stops at once (Stream.interrupt) and no more audio of
the context is sent. Every context ends with `{"isFinal": true}` (naming it on the
multi-context socket), sent after its last audio.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

from adapters.errors import BadRequest, MorpheusError, TTSError
from server.core.admission import Busy
from server.core.orchestrator import Orchestrator
from server.core.stream import Stream, StreamSpec
from server.faces.elevenlabs.alignment import CharAligner, MsAlignment
from server.faces.elevenlabs.api import VoiceSettings, ws_error
from server.faces.elevenlabs.formats import OutputFormat
from server.faces.elevenlabs.frames import Frame, frames

log = logging.getLogger("morpheus.elevenlabs")

Send = Callable[[dict[str, Any]], Awaitable[None]]
SpecFor = Callable[[VoiceSettings | None], StreamSpec]


class Context:
    """Text in, audio messages out, for one ElevenLabs context."""

    def __init__(self, context_id: str | None, *, orch: Orchestrator, send: Send,
                 spec_for: SpecFor, fmt: OutputFormat, voice_settings: VoiceSettings | None,
                 max_chars: int, on_end: Callable[[Context], None],
                 on_audio: Callable[[float], None] = lambda ms: None) -> None:
        self.id = context_id  # None on stream-input: its messages name no context
        self._orch = orch
        self._send = send
        self._spec_for = spec_for
        self._format = fmt
        self.voice_settings = voice_settings
        self._max_chars = max_chars
        self._on_end = on_end
        self._on_audio = on_audio  # ms of audio sent to the client, for the playout model
        self.aligner = CharAligner()
        self.stream: Stream | None = None
        self.task: asyncio.Task[None] | None = None
        self._ops: list[str] = []  # "flush" / "end" / "text", applied once the stream is open
        self._texts: list[str] = []
        self.chars = 0
        self.input_closed = False
        # The last message for this context was a flush that carried no text: the end of a
        # turn, as pipecat ({"flush": true}), LiveKit ({"text": "", "flush": true}) and
        # ElevenLabs' own guide send it right before close_context.
        self.turn_ended = False
        self.cancelled = False
        self.done = False  # the final message went out
        self.outcome = "completed"  # completed | cancelled | failed | bad_request

    # --- input --------------------------------------------------------------------------

    def push(self, text: str) -> None:
        """Append a text piece; BadRequest when the context's text gets too long or its input
        has ended."""
        if self.input_closed:
            raise BadRequest("this context's input has ended", field="text")
        if self.chars + len(text) > self._max_chars:
            raise BadRequest(f"a context's text is limited to {self._max_chars} characters "
                             "(MAX_INPUT_CHARS)", field="text")
        self.chars += len(text)
        self.aligner.add_text(text)
        self.turn_ended = self.turn_ended and not text.strip()
        self._apply("text", text)
        if self.task is None and text.strip():
            self.task = asyncio.create_task(self._run(), name=f"elevenlabs-context-{self.id}")

    def flush(self, *, with_text: bool = False) -> None:
        """Speak what is buffered now. A flush that carries no text of its own is how clients
        end a turn (see `turn_ended`); one riding on a text piece is per-sentence pacing."""
        self.turn_ended = not with_text
        self._apply("flush")

    async def end_input(self) -> None:
        """No more text: the context ends once its audio is out."""
        if self.input_closed:
            return
        self.input_closed = True
        if self.task is None:  # nothing was ever said
            await self._final()
            return
        self._apply("end")

    async def cancel(self) -> None:
        """Barge-in: stop synthesis now; nothing more of this context is sent but its final."""
        if self.done or self.cancelled:
            return
        self.cancelled = True
        self.input_closed = True
        self.outcome = "cancelled"
        self._ops.clear()
        self._texts.clear()
        if self.stream is not None:
            self.stream.interrupt()
        if self.task is None:
            await self._final()

    def _apply(self, op: str, text: str = "") -> None:
        if self.stream is None:
            self._ops.append(op)
            if op == "text":
                self._texts.append(text)
            return
        self._do(self.stream, op, text)

    @staticmethod
    def _do(stream: Stream, op: str, text: str) -> None:
        if op == "text":
            stream.push_text(text)
        elif op == "flush":
            stream.flush()
        else:
            stream.end_input()

    # --- output -------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            stream = await self._orch.open(self._spec_for(self.voice_settings))
        except (Busy, MorpheusError) as e:
            self.outcome = "failed"
            await self._send(_error_message(e, self.id))
            await self._final()
            return
        self.stream = stream
        try:
            if self.cancelled:
                stream.interrupt()
                return
            texts = iter(self._texts)
            for op in self._ops:
                self._do(stream, op, next(texts) if op == "text" else "")
            self._ops.clear()
            self._texts.clear()
            await self._pump(stream)
        except ConnectionError:
            self.cancelled = True  # the client went away mid-send
            self.outcome = "cancelled"
            stream.interrupt()
        except asyncio.CancelledError:
            self.cancelled = True
            self.outcome = "cancelled"
            stream.interrupt()
            raise
        finally:
            await stream.aclose()
            await self._final()

    async def _pump(self, stream: Stream) -> None:
        alignment, normalized = MsAlignment(), MsAlignment()
        parts = frames(stream, self._format.encoder(streaming=True), self.aligner)
        sent_ms = 0.0
        try:
            async with aclosing(parts):
                async for frame in parts:
                    if self.cancelled:
                        return
                    if frame.audio or frame.chars:
                        await self._send(self._audio_message(frame, alignment, normalized))
                        self._on_audio(frame.audio_end_ms - sent_ms)
                        sent_ms = frame.audio_end_ms
        except (TTSError, BadRequest) as e:
            if not self.cancelled:
                self.outcome = "bad_request" if isinstance(e, BadRequest) else "failed"
                await self._send(_error_message(e, self.id))

    def _audio_message(self, frame: Frame, alignment: MsAlignment,
                       normalized: MsAlignment) -> dict[str, Any]:
        msg: dict[str, Any] = {"audio": base64.b64encode(frame.audio).decode(),
                               "isFinal": False,
                               "normalizedAlignment": normalized.render(frame.normalized),
                               "alignment": alignment.render(frame.chars)}
        if self.id is not None:
            msg["contextId"] = self.id
        return msg

    async def _final(self) -> None:
        if self.done:
            return
        self.done = True
        msg: dict[str, Any] = {"isFinal": True}
        if self.id is not None:
            msg["contextId"] = self.id
        try:
            await self._send(msg)
        finally:
            self._on_end(self)


def _error_message(e: MorpheusError | Busy, context_id: str | None) -> dict[str, Any]:
    if isinstance(e, Busy):
        return ws_error("too_many_concurrent_requests", str(e), context_id=context_id)
    if isinstance(e, BadRequest):
        field = "model_id" if e.field == "backend" else ("text" if e.field == "input" else e.field)
        return ws_error("invalid_request", str(e), field=field, context_id=context_id)
    return ws_error("engine_error", str(e), context_id=context_id)


__all__ = ["Context"]
