"""Whole responses with bounded memory: audio goes to a spool file or straight to disk.

`stream=false` and `/speak` need all of a response before answering. At MAX_INPUT_CHARS that
is hours of audio (about 300 MB of PCM), so it is never held in memory: encoded bytes go to a
spool that stays in RAM up to SPOOL_RAM_BYTES and moves to a temporary file beyond; `/speak`
writes its WAV in place and patches the sizes at the end.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

from adapters.base import PIPELINE_RATE_HZ
from dsp.encoders import make_encoder
from dsp.wav import HEADER_BYTES, wav_header
from server.core.events import AudioOut
from server.core.stream import Stream

SPOOL_RAM_BYTES = 4 * 1024 * 1024
READ_BYTES = 256 * 1024


class Spooled:
    """A finished response's bytes on a spool; read it once with `chunks()`, then `close()`."""

    def __init__(self, spool: IO[bytes], size: int) -> None:
        self.spool = spool
        self.size = size

    async def chunks(self) -> AsyncIterator[bytes]:
        await asyncio.to_thread(self.spool.seek, 0)
        while True:
            data = await asyncio.to_thread(self.spool.read, READ_BYTES)
            if not data:
                return
            yield data

    def close(self) -> None:
        self.spool.close()


async def spool_response(stream: Stream, fmt: str) -> Spooled:
    """All of `stream`'s audio encoded as `fmt` (WAV with true sizes). Raises what the stream
    raises (a MorpheusError) after closing the spool."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_RAM_BYTES)  # noqa: SIM115
    try:
        if fmt == "wav":
            size = HEADER_BYTES + await _pcm_to(stream, spool, HEADER_BYTES)
            if size & 1:
                spool.write(b"\x00")
            spool.seek(0)
            spool.write(wav_header(PIPELINE_RATE_HZ, size - HEADER_BYTES))
            return Spooled(spool, size + (size & 1))
        enc = make_encoder(fmt, PIPELINE_RATE_HZ, streaming=False)
        size = 0
        async for ev in stream:
            if isinstance(ev, AudioOut):
                size += await asyncio.to_thread(spool.write, enc.encode(ev.pcm))
        size += await asyncio.to_thread(spool.write, enc.flush())
        return Spooled(spool, size)
    except BaseException:
        spool.close()
        raise


async def write_wav(stream: Stream, path: Path) -> int:
    """`stream`'s audio as a WAV file at `path`, written as it comes; the data size in bytes.
    A failed stream leaves no file behind."""
    f = await asyncio.to_thread(path.open, "wb")
    try:
        data = await _pcm_to(stream, f, HEADER_BYTES)
        if data & 1:
            await asyncio.to_thread(f.write, b"\x00")
        await asyncio.to_thread(f.seek, 0)
        await asyncio.to_thread(f.write, wav_header(PIPELINE_RATE_HZ, data))
    except BaseException:
        f.close()
        path.unlink(missing_ok=True)  # noqa: ASYNC240 (cleanup, maybe while cancelled)
        raise
    f.close()
    return data


async def _pcm_to(stream: Stream, f: IO[bytes], offset: int) -> int:
    """Write the stream's PCM at `offset` onward; return its byte count."""
    await asyncio.to_thread(f.seek, offset)
    size = 0
    async for ev in stream:
        if isinstance(ev, AudioOut):
            size += await asyncio.to_thread(f.write, ev.pcm)
    return size


__all__ = ["SPOOL_RAM_BYTES", "Spooled", "spool_response", "write_wav"]
