"""xtts against the XTTS test server, once per protocol (streaming-server, api-server).

The streaming-server case speaks with a voice cloned from a reference clip (the path users
ask for most); the api-server case with one of the server's own speakers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from adapters.base import TTSAdapter
from dsp.wav import wav_file
from tests import piper_speech
from tests.contract import (
    FAULT_TIMEOUTS,
    CaseEnv,
    ContractCase,
    Running,
    closing_adapter,
    make_adapter,
)
from tests.upstream_server import Fault, refused_url
from tests.xtts_server import XttsTestServer


def reference_clip(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    clip = folder / "narrator.wav"
    if not clip.exists():
        pcm = b"".join(piper_speech.sentences("This is the voice to clone from.", 22_050))
        clip.write_bytes(wav_file(pcm, 22_050))
    return folder


def starter(api: str) -> Callable[[CaseEnv], AbstractAsyncContextManager[Running]]:
    @asynccontextmanager
    async def start(env: CaseEnv) -> AsyncIterator[Running]:
        clips = reference_clip(env.shared / "xtts-clips")
        async with XttsTestServer(api=api, rtf=4.0, chunk_ms=100) as srv:
            voice = "narrator" if api == "streaming-server" else "male_deep"
            adapter = make_adapter("xtts", xtts_url=srv.url, xtts_speakers_dir=str(clips),
                                   xtts_voice=voice)
            async with closing_adapter(adapter):
                yield Running(adapter, live=srv.open_connections,
                              work_done=lambda: srv.chunks_sent,
                              server_audio_ms=lambda: srv.audio_requests("/tts_stream")[-1].audio_ms)

    return start


def faulty(api: str, fault: Fault | None
           ) -> Callable[[CaseEnv], AbstractAsyncContextManager[TTSAdapter]]:
    @asynccontextmanager
    async def factory(env: CaseEnv) -> AsyncIterator[TTSAdapter]:
        if fault is None:  # refused: nothing listens
            async with closing_adapter(make_adapter(
                    "xtts", xtts_url=refused_url(), xtts_api=api, **FAULT_TIMEOUTS)) as a:
                yield a
            return
        async with XttsTestServer(api=api) as srv:
            srv.fault = fault
            async with closing_adapter(make_adapter(
                    "xtts", xtts_url=srv.url, xtts_voice="Claribel Dervla"
                    if api == "streaming-server" else "male_deep", **FAULT_TIMEOUTS)) as a:
                yield a

    return factory


CASES = [
    ContractCase(backend="xtts", variant=api, start=starter(api), refused=faulty(api, None),
                 timed_out=faulty(api, "stall"), garbage=faulty(api, "garbage"))
    for api in ("streaming-server", "api-server")
]
