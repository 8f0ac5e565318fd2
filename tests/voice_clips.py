"""Reference clips for the voice-library tests: real Piper speech (the bundled joe voice) in the
formats people upload, silence, and helpers that post them to a running Morpheus."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import aiohttp

from dsp.encoders import make_encoder
from dsp.wav import wav_file
from tests import piper_speech

RATE_HZ = 24_000
CLIP_TEXT = ("This is my voice. I am recording a short clip, so that a server can speak "
             "in a voice like mine.")


def piper_pcm(text: str = CLIP_TEXT, rate_hz: int = RATE_HZ) -> bytes:
    """Piper saying `text`, made once per process (Piper's durations vary a little from one
    synthesis to the next, so a test compares against the very speech it uploaded)."""
    return _pcm(text, rate_hz)


@functools.cache
def _pcm(text: str, rate_hz: int) -> bytes:
    return b"".join(piper_speech.sentences(text, rate_hz))


def piper_clip(fmt: str = "wav", text: str = CLIP_TEXT, rate_hz: int = RATE_HZ) -> bytes:
    """Piper saying `text`, as a whole file in `fmt` (wav, mp3, flac, opus ...)."""
    pcm = piper_pcm(text, rate_hz)
    if fmt == "wav":
        return wav_file(pcm, rate_hz)
    enc = make_encoder(fmt, rate_hz, streaming=False)
    return enc.encode(pcm) + enc.flush()


def silence_wav(seconds: float = 3.0) -> bytes:
    return wav_file(b"\0\0" * int(seconds * RATE_HZ), RATE_HZ)


def clip_form(name: str | None, *files: tuple[str, bytes, str], **fields: str
              ) -> aiohttp.FormData:
    """A multipart body as ElevenLabs clients send it: fields first, then `files`."""
    form = aiohttp.FormData(default_to_multipart=True)
    if name is not None:
        form.add_field("name", name)
    for key, value in fields.items():
        form.add_field(key, value)
    for filename, data, content_type in files:
        form.add_field("files", data, filename=filename, content_type=content_type)
    return form


async def add_clone(srv: Any, name: str, *files: tuple[str, bytes, str], **fields: str
                    ) -> tuple[int, dict[str, Any]]:
    """POST /v1/audio/voices (multipart): (status, JSON body)."""
    files = files or (("clip.wav", piper_clip(), "audio/wav"),)
    async with srv.http.post(f"{srv.url}/v1/audio/voices",
                             data=clip_form(name, *files, **fields)) as r:
        return r.status, await r.json()


async def add_preset(srv: Any, **body: Any) -> tuple[int, dict[str, Any]]:
    async with srv.http.post(f"{srv.url}/v1/audio/voices", json=body) as r:
        return r.status, await r.json()


def library_files(root: Path) -> list[str]:
    """Everything under VOICES_DIR, relative, sorted (the lock file aside)."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name != ".voices.lock")


__all__ = ["CLIP_TEXT", "add_clone", "add_preset", "clip_form", "library_files", "piper_clip",
           "piper_pcm", "silence_wav"]
