"""Whole ElevenLabs responses (`POST /v1/text-to-speech/{voice_id}` and `/with-timestamps`)
with bounded memory, as server/whole_audio.py does for /v1/audio/speech.

The encoded audio goes to a spool (in RAM up to SPOOL_RAM_BYTES, then a temporary file); WAV
is spooled as PCM with its header patched once the size is known. The timestamps JSON is
written around the spool's base64, three bytes at a time, so only the alignment is held.
"""

from __future__ import annotations

import asyncio
import base64
import json
import tempfile
from dataclasses import dataclass, field

from aiohttp import web

from dsp.wav import HEADER_BYTES, wav_header
from server.app_keys import METRICS, SETTINGS
from server.core.stream import Stream
from server.faces.elevenlabs.alignment import CharAligner, CharTime, seconds_alignment
from server.faces.elevenlabs.formats import OutputFormat
from server.faces.elevenlabs.frames import frames
from server.faces.whole_audio import SPOOL_RAM_BYTES, Spooled
from server.faces.writes import closer, send_within


@dataclass
class WholeAudio:
    """A finished response: its audio on a spool, and its characters' times."""

    audio: Spooled
    chars: list[CharTime] = field(default_factory=list)
    normalized: list[CharTime] = field(default_factory=list)


async def spool_whole(stream: Stream, fmt: OutputFormat, text: str) -> WholeAudio:
    """All of `stream` encoded as `fmt`. Raises what the stream raises, the spool closed."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_RAM_BYTES)  # noqa: SIM115
    try:
        wav = fmt.codec == "wav"
        encoder = (OutputFormat(fmt.name, "pcm", fmt.sample_rate_hz) if wav else fmt).encoder(
            streaming=False)
        size = spool.write(bytes(HEADER_BYTES)) if wav else 0
        whole = WholeAudio(Spooled(spool, 0))
        async for frame in frames(stream, encoder, CharAligner(text)):
            if frame.audio:
                size += await asyncio.to_thread(spool.write, frame.audio)
            whole.chars += frame.chars
            whole.normalized += frame.normalized
        if wav:
            data = size - HEADER_BYTES
            if data & 1:
                size += spool.write(b"\x00")  # RIFF pads an odd chunk
            spool.seek(0)
            spool.write(wav_header(fmt.sample_rate_hz, data))
        whole.audio.size = size
        return whole
    except BaseException:
        spool.close()
        raise


async def send_audio(request: web.Request, whole: WholeAudio, content_type: str,
                     headers: dict[str, str]) -> web.StreamResponse:
    """The file, with its Content-Length."""
    resp = web.StreamResponse(headers=headers)
    resp.content_type = content_type
    resp.content_length = whole.audio.size
    await resp.prepare(request)
    try:
        async for data in whole.audio.chunks():
            await _write(request, resp, data)
        await resp.write_eof()
    except ConnectionError:  # the client went away: nothing left to do
        pass
    return resp


async def send_timestamps(request: web.Request, whole: WholeAudio,
                          headers: dict[str, str]) -> web.StreamResponse:
    """`{"audio_base64", "alignment", "normalized_alignment"}`, the base64 written as read."""
    head = b'{"audio_base64": "'
    tail = ('", ' + json.dumps({"alignment": seconds_alignment(whole.chars),
                               "normalized_alignment": seconds_alignment(whole.normalized)})[1:]
            ).encode()
    resp = web.StreamResponse(headers=headers)
    resp.content_type = "application/json"
    resp.content_length = len(head) + 4 * ((whole.audio.size + 2) // 3) + len(tail)
    await resp.prepare(request)
    try:
        await _write(request, resp, head)
        carry = b""
        async for data in whole.audio.chunks():
            data = carry + data
            cut = len(data) - len(data) % 3  # base64 of whole 3-byte groups joins seamlessly
            carry = data[cut:]
            await _write(request, resp, base64.b64encode(data[:cut]))
        await _write(request, resp, base64.b64encode(carry) + tail)
        await resp.write_eof()
    except ConnectionError:  # the client went away: nothing left to do
        pass
    return resp


async def _write(request: web.Request, resp: web.StreamResponse, data: bytes) -> None:
    """A write the client must take within WRITE_TIMEOUT_S (server/writes.py)."""
    await send_within(resp.write(data), request.app[SETTINGS].current.write_timeout_s,
                      request.app[METRICS], closer(request))


__all__ = ["WholeAudio", "send_audio", "send_timestamps", "spool_whole"]
