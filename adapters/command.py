"""Any local engine with a command line, the escape hatch for local pipelines.

COMMAND_TTS is split into arguments the way a shell would (shlex) but never run through one;
`{voice}` in any argument becomes the voice (COMMAND_TTS_VOICES, a comma list; else one voice,
"default"). The segment's text goes to standard input (then EOF); standard output is read as
it is produced: a WAV stream (the header says the format; streaming writers' placeholder
sizes are fine), or raw s16le mono PCM at COMMAND_TTS_RATE when that is set. Examples:

    espeak-ng --stdout -v {voice}
    python -m piper -m /voices/{voice}.onnx --output-raw        (COMMAND_TTS_RATE=22050)
    sh -c 'my-tts --text-file - | sox -t wav - -t wav -r 16000 -'

The process runs in its own process group: cancelling the stream kills the whole group (a
pipeline included) at once, and the pipes are drained so nothing is left behind. A non-zero
exit raises EngineError with the tail of standard error; no output for UPSTREAM_READ_TIMEOUT_S
raises BackendTimeout (a hung engine is killed, like a silent upstream).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from adapters.base import AudioChunk, Capabilities, Health, TTSAdapter, TTSInput, Voice
from adapters.errors import (
    BackendTimeout,
    BackendUnavailable,
    EngineError,
    MalformedAudio,
    NoAudioError,
)
from dsp.levels import align_samples
from dsp.wav import WavReader

READ_BYTES = 1 << 16  # a pipe's worth: whatever the engine has written so far
STDERR_TAIL_BYTES = 2000
WARMUP_TEXT = "Hi."
DEFAULT_VOICE = "default"


class CommandAdapter(TTSAdapter):
    """One process per segment; its standard output streamed as chunks; see the module doc."""

    name = "command"
    capabilities = Capabilities(
        native_rate_hz=22_050, streams_sub_sentence=False, chunk_unit="segment",
        languages=("en",), native_speed=False,  # no speed flag we could know: the pipeline stretches
    )

    def __init__(self, command: str, *, rate_hz: int | None, voices: Sequence[str],
                 read_timeout_s: float) -> None:
        self._argv = shlex.split(command)
        self._rate = rate_hz
        self._read_timeout_s = read_timeout_s
        self._voices = [v for v in voices if v] or [DEFAULT_VOICE]
        if rate_hz:
            self.capabilities = replace(self.capabilities, native_rate_hz=rate_hz)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> CommandAdapter:
        return cls(str(options["command_tts"]), rate_hz=options["command_tts_rate"],
                   voices=[v.strip() for v in str(options["command_tts_voices"]).split(",")],
                   read_timeout_s=float(options["upstream_read_timeout_s"]))

    def _not_ready(self) -> str | None:
        if not self._argv:
            return "COMMAND_TTS is not set (e.g. 'espeak-ng --stdout -v {voice}')"
        if shutil.which(self._argv[0]) is None:
            return f"{self._argv[0]!r} (COMMAND_TTS) is not an executable on PATH"
        if self._voices == [DEFAULT_VOICE] and any("{voice}" in a for a in self._argv):
            return "COMMAND_TTS uses {voice}: list the voices in COMMAND_TTS_VOICES"
        return None

    async def health(self) -> Health:
        reason = self._not_ready()
        return Health(reason is None, self.name, "subprocess", reason=reason)

    async def warmup(self) -> None:
        """Run the command once: a wrong command line fails here, not in the first stream."""
        reason = self._not_ready()
        if reason is not None:
            raise BackendUnavailable(reason, backend=self.name)
        async for _ in self.synth_stream(TTSInput(WARMUP_TEXT)):
            pass

    def voices(self) -> list[Voice]:
        return [Voice(id=v, name=v, description=f"{self._argv[0] if self._argv else 'command'}"
                      f" voice {v}", backend=self.name) for v in self._voices]

    def default_voice(self) -> str | None:
        return self._voices[0]

    def argv(self, voice: str | None) -> list[str]:
        """The command line for `voice` (unknown voices get the default one)."""
        v = voice if voice in self._voices else self._voices[0]
        return [arg.replace("{voice}", v) for arg in self._argv]

    async def synth_stream(self, req: TTSInput) -> AsyncIterator[AudioChunk]:
        reason = self._not_ready()
        if reason is not None:
            raise BackendUnavailable(reason, backend=self.name)
        argv = self.argv(req.voice)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True)
        except OSError as e:
            raise BackendUnavailable(f"cannot run {argv[0]}: {e}", backend=self.name) from e
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        feeder = asyncio.ensure_future(_feed(proc.stdin, req.text))
        stderr = asyncio.ensure_future(_tail(proc.stderr))
        finished = False
        try:
            samples, rate = 0, self._rate or self.capabilities.native_rate_hz
            async for pcm, rate in self._audio(proc.stdout):
                samples += len(pcm) // 2
                yield AudioChunk(pcm, rate)
            code = await proc.wait()
            finished = True
            if code != 0:
                raise EngineError(f"{argv[0]} exited with status {code}: {await stderr}",
                                  backend=self.name)
            if not samples:
                raise NoAudioError(f"{argv[0]} wrote no audio", backend=self.name)
            yield AudioChunk(b"", rate, is_final=True)
        except MalformedAudio:
            status = await proc.wait() if proc.stdout.at_eof() else None
            if status:  # a failed process explains bad output better than the bytes do
                raise EngineError(f"{argv[0]} exited with status {status}: {await stderr}",
                                  backend=self.name) from None
            raise
        finally:
            if not finished:
                _kill_group(proc)
            feeder.cancel()
            await asyncio.gather(feeder, stderr, return_exceptions=True)
            while await proc.stdout.read(READ_BYTES):  # drain: a full pipe blocks the writer
                pass
            await proc.wait()

    async def _audio(self, stdout: asyncio.StreamReader) -> AsyncIterator[tuple[bytes, int]]:
        """(s16 mono PCM, rate) pieces of whole frames, as the process writes them."""
        reader = None if self._rate else WavReader()
        carry = b""  # raw PCM: an odd byte waits for its partner
        wrote = 0
        while True:
            try:
                data = await asyncio.wait_for(stdout.read(READ_BYTES), self._read_timeout_s)
            except asyncio.TimeoutError:
                raise BackendTimeout(f"{self._argv[0]} wrote nothing for "
                                     f"{self._read_timeout_s:g} s", backend=self.name) from None
            if not data:
                break
            wrote += len(data)
            if reader is None:  # raw s16le at COMMAND_TTS_RATE
                pcm, carry = align_samples(carry, data)
                if pcm:
                    yield pcm, self._rate or 0
                continue
            try:
                pcm = reader.feed(data)
            except ValueError as e:
                raise MalformedAudio(f"{self._argv[0]}: {e} (set COMMAND_TTS_RATE for raw "
                                     "PCM)", backend=self.name) from e
            if pcm:
                assert reader.format is not None
                yield pcm, reader.format.sample_rate_hz
        if reader is not None and wrote and not reader.in_data:
            raise MalformedAudio(f"{self._argv[0]} wrote {wrote} bytes, not a whole WAV "
                                 "header", backend=self.name)


async def _feed(stdin: asyncio.StreamWriter, text: str) -> None:
    """The text, a newline (line-reading engines) and EOF; an engine may ignore its input."""
    with contextlib.suppress(ConnectionError, OSError):
        stdin.write(text.encode() + b"\n")
        await stdin.drain()
        stdin.close()
        await stdin.wait_closed()


async def _tail(stderr: asyncio.StreamReader) -> str:
    """Standard error, read as it comes (a full pipe would block the engine), last bytes kept."""
    kept = b""
    while data := await stderr.read(READ_BYTES):
        kept = (kept + data)[-STDERR_TAIL_BYTES:]
    return kept.decode(errors="replace").strip()[-500:]


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the command and anything it started (its group outlives an exited leader)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


__all__ = ["CommandAdapter"]
