"""espeak-ng (Debian package) as a subprocess: tiny, robotic, ~1000x real time; the fallback."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Mapping
from typing import Any

from adapters.base import AudioChunk, Capabilities, Health, TTSAdapter, TTSInput, Voice
from adapters.errors import BackendUnavailable, EngineError
from dsp.wav import WavReader

ESPEAK_BINARY = "espeak-ng"
ESPEAK_RATE_HZ = 22_050  # what espeak-ng writes; its WAV header says so for each stream
READ_BYTES = 8_820  # 200 ms at 22.05 kHz s16
BASE_WPM = 175


class EspeakAdapter(TTSAdapter):
    """Streams espeak-ng's stdout WAV as it is written; cancelling kills the process."""

    name = "espeak"
    capabilities = Capabilities(
        native_rate_hz=ESPEAK_RATE_HZ, streams_sub_sentence=True, chunk_unit="segment",
        languages=("en", "fr", "de", "es", "it", "hi", "ko", "zh"), native_speed=True,
    )

    def __init__(self, voice: str, binary: str = ESPEAK_BINARY) -> None:
        self._voice = voice
        self._binary = binary
        self._voices: list[Voice] | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> EspeakAdapter:
        return cls(voice=str(options["espeak_voice"]))

    def _path(self) -> str | None:
        return shutil.which(self._binary)

    async def health(self) -> Health:
        if self._path() is None:
            return Health(False, self.name, "subprocess",
                          reason="espeak-ng not found: apt-get install espeak-ng")
        return Health(True, self.name, "subprocess")

    async def warmup(self) -> None:
        if self._path() is None:
            raise BackendUnavailable("espeak-ng not installed", backend=self.name)
        if self._voices is None:
            self._voices = await self._list_voices()

    async def _list_voices(self) -> list[Voice]:
        proc = await asyncio.create_subprocess_exec(
            self._binary, "--voices", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate()
        voices = []
        for line in out.decode(errors="replace").splitlines()[1:]:
            cols = line.split()
            if len(cols) >= 4:  # Pty Language Age/Gender VoiceName File ...
                gender = {"M": "male", "F": "female"}.get(cols[2].split("/")[-1])
                voices.append(Voice(id=cols[1], name=cols[3].replace("_", " "),
                                    language=cols[1], gender=gender,
                                    description="espeak-ng formant voice", backend=self.name))
        return voices

    def voices(self) -> list[Voice]:
        if self._voices:
            return self._voices
        return [Voice(id=self._voice, name=self._voice, language=self._voice, backend=self.name)]

    def default_voice(self) -> str | None:
        return self._voice

    def _known(self, voice: str | None) -> bool:
        return voice is not None and any(v.id == voice for v in self.voices())

    async def synth_stream(self, req: TTSInput) -> AsyncIterator[AudioChunk]:
        path = self._path()
        if path is None:
            raise BackendUnavailable("espeak-ng not installed", backend=self.name)
        voice = req.voice if req.voice is not None and self._known(req.voice) else self._voice
        wpm = str(int(min(450, max(80, BASE_WPM * req.speed))))
        proc = await asyncio.create_subprocess_exec(
            path, "-v", voice, "-s", wpm, "--stdout", "--", req.text,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        reader = WavReader()  # espeak-ng's streamed WAV has placeholder sizes: read on to EOF
        try:
            pending = b""
            while True:
                data = await proc.stdout.read(READ_BYTES)
                if not data:
                    break
                try:
                    pending += reader.feed(data)
                except ValueError as e:
                    raise EngineError(f"espeak-ng wrote no WAV: {e}", backend=self.name) from e
                if len(pending) >= READ_BYTES and reader.format is not None:
                    yield AudioChunk(pending, reader.format.sample_rate_hz)
                    pending = b""
            if await proc.wait() != 0:
                err = (await proc.stderr.read()).decode(errors="replace") if proc.stderr else ""
                raise EngineError(f"espeak-ng failed: {err.strip()}", backend=self.name)
            if reader.format is None or not reader.in_data:
                raise EngineError("espeak-ng produced no audio", backend=self.name)
            yield AudioChunk(pending, reader.format.sample_rate_hz, is_final=True)
        finally:
            if proc.returncode is None:
                proc.kill()
            # Drain both pipes: a paused, unread pipe would keep wait() from ever returning.
            await proc.communicate()
