"""The command adapter with real command-line engines (espeak-ng --stdout, Piper's own CLI),
WAV and raw modes, a streaming writer, failures, and cancel killing the process group."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError

from adapters.base import AudioChunk, TTSInput
from adapters.command import CommandAdapter
from adapters.errors import BackendTimeout, BackendUnavailable, EngineError, MalformedAudio
from adapters.piper.voices import bundled_voice_path
from server.config import Settings
from tests.audio_check import decode, pcm_stats
from tests.contract import make_adapter
from tests.procs import live_children, live_in_group

TEXT = "The kettle whistled in the kitchen. Outside, the rain kept falling on the roof."
PY = shlex.quote(sys.executable)
JOE = bundled_voice_path()
assert JOE is not None
PIPER_RAW = f"{PY} -m piper -m {shlex.quote(str(JOE.parent))}/{{voice}}.onnx --output-raw"
PIPER_WAV = f"{PY} -m piper -m {shlex.quote(str(JOE.parent))}/{{voice}}.onnx -f -"

# A streaming WAV writer: a header with placeholder sizes and a LIST chunk, 16 kHz stereo
# float32, then half a second of tone per write, with a pause between writes.
STREAMER = r"""
import struct, sys, time, math
out = sys.stdout.buffer
fmt = struct.pack("<HHIIHH", 3, 2, 16000, 16000 * 8, 8, 32)
out.write(b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
          + fmt + b"LIST" + struct.pack("<I", 4) + b"INFO" + b"data" + struct.pack("<I", 0))
for part in range(int(sys.argv[1])):
    frames = [0.5 * math.sin(2 * math.pi * 440 * i / 16000) for i in range(8000)]
    out.write(b"".join(struct.pack("<ff", x, x) for x in frames))
    out.flush()
    time.sleep(float(sys.argv[2]))
"""


def command(line: str, *, rate_hz: int | None = None, voices: tuple[str, ...] = (),
            **settings: object) -> CommandAdapter:
    """The backend built as the server builds it, from settings."""
    return CommandAdapter.from_options(Settings(
        command_tts=line, command_tts_rate=rate_hz, command_tts_voices=",".join(voices),
        **settings).model_dump())


async def collect(chunks: AsyncIterator[AudioChunk]) -> list[AudioChunk]:
    return [c async for c in chunks]


def speech(chunks: list[AudioChunk], rate: int) -> bytes:
    assert sum(c.is_final for c in chunks) == 1 and chunks[-1].is_final
    assert {c.sample_rate_hz for c in chunks} == {rate}
    return b"".join(c.pcm for c in chunks)


async def test_espeak_wav_on_stdout_with_the_voice_filled_in() -> None:
    adapter = command("espeak-ng --stdout -v {voice}", voices=("en-us", "de"))
    assert (await adapter.health()).ready
    assert [v.id for v in adapter.voices()] == ["en-us", "de"]
    assert adapter.argv("de") == ["espeak-ng", "--stdout", "-v", "de"]
    assert adapter.argv("klingon") == ["espeak-ng", "--stdout", "-v", "en-us"]  # the default
    en = speech(await collect(adapter.synth_stream(TTSInput(TEXT))), 22050)
    de = speech(await collect(adapter.synth_stream(TTSInput(TEXT, voice="de"))), 22050)
    stats = pcm_stats(en, 22050)
    assert stats.rms_dbfs > -35
    # the same engine through its own adapter: the same speech, give or take the last read
    own = b"".join([c.pcm async for c in make_adapter("espeak").synth_stream(TTSInput(TEXT, speed=1.0))])
    assert stats.duration_s == pytest.approx(pcm_stats(own, 22050).duration_s, rel=0.1)
    assert en != de


@pytest.mark.parametrize("line,rate", [(PIPER_RAW, 22050), (PIPER_WAV, None)],
                         ids=["raw", "wav"])
async def test_piper_cli_raw_and_wav(line: str, rate: int | None) -> None:
    adapter = command(line, rate_hz=rate, voices=("en_US-joe-medium",))
    await adapter.warmup()  # runs the command once
    pcm = speech(await collect(adapter.synth_stream(TTSInput(TEXT))), 22050)
    local = b"".join([c.pcm async for c in make_adapter("piper").synth_stream(TTSInput(TEXT))])
    stats = pcm_stats(pcm, 22050)
    assert stats.rms_dbfs > -35
    assert stats.duration_s == pytest.approx(pcm_stats(local, 22050).duration_s, rel=0.25)


async def test_a_streaming_writer_is_read_as_it_writes() -> None:
    adapter = command(f"{PY} -c {shlex.quote(STREAMER)} 3 2.0")
    arrived = []
    chunks = []
    async for chunk in adapter.synth_stream(TTSInput("ignored")):
        arrived.append(time.monotonic())
        chunks.append(chunk)
    pcm = speech(chunks, 16000)
    assert len(pcm) == 3 * 8000 * 2  # float stereo -> s16 mono, every frame
    assert pcm_stats(pcm, 16000).rms_dbfs == pytest.approx(-9.0, abs=0.5)  # 0.5 sine
    # the first half second came out two pauses (4 s) before the process finished
    assert arrived[-1] - arrived[0] > 3.0


async def test_cancel_kills_the_whole_process_group_at_once() -> None:
    marker = "cancel-me-0451"
    pipeline = f'{PY} -c "$0" 1000 0.05 | cat  # {marker}'  # $0: the streamer script
    adapter = command(f"sh -c {shlex.quote(pipeline)} {shlex.quote(STREAMER)}")
    agen = adapter.synth_stream(TTSInput("ignored"))
    first = await agen.__anext__()
    assert first.pcm
    (leader,) = live_children(marker=marker)
    assert len(live_in_group(leader.pid)) == 3  # sh, python, cat
    t0 = time.monotonic()
    await agen.aclose()
    assert time.monotonic() - t0 < 5.0
    assert live_in_group(leader.pid) == [] and live_children(marker=marker) == []


async def test_failures_are_typed_with_the_engines_own_words() -> None:
    failing = command("sh -c 'echo no such model: x.onnx >&2; exit 3'")
    with pytest.raises(EngineError, match="status 3: no such model: x.onnx"):
        await collect(failing.synth_stream(TTSInput("Hello.")))
    with pytest.raises(MalformedAudio, match="not a WAV stream"):
        await collect(command("cat").synth_stream(TTSInput("Hello.")))
    silent = command("sleep 30", upstream_read_timeout_s=0.3)
    with pytest.raises(BackendTimeout, match="wrote nothing"):
        await collect(silent.synth_stream(TTSInput("Hello.")))
    missing = command("no-such-engine-here --speak")
    assert "not an executable" in ((await missing.health()).reason or "")
    with pytest.raises(BackendUnavailable):
        await collect(missing.synth_stream(TTSInput("Hello.")))
    unset = await command("").health()
    assert not unset.ready and "COMMAND_TTS is not set" in (unset.reason or "")
    no_voices = await command("espeak-ng --stdout -v {voice}").health()
    assert not no_voices.ready and "COMMAND_TTS_VOICES" in (no_voices.reason or "")


async def test_http_through_the_command_backend(serve) -> None:
    srv = await serve(tts_backend="command", backends="command,espeak",
                      command_tts="espeak-ng --stdout -v {voice}",
                      command_tts_voices="en-us,en-gb")
    async with srv.http.post(srv.url + "/v1/audio/speech", json={
            "input": TEXT, "voice": "en-gb", "response_format": "wav"}) as r:
        assert r.status == 200, await r.text()
        assert r.headers["X-Backend"] == "command" and r.headers["X-Voice"] == "en-gb"
        data = await r.read()
    decoded = decode(data)
    assert decoded.sample_rate_hz == 24000 and 3.0 < decoded.duration_s < 10.0
    assert decoded.rms_dbfs > -35
    async with srv.http.get(srv.url + "/v1/audio/voices") as r:
        assert (await r.json())["voices"] == ["en-us", "en-gb"]


def test_settings_refuse_what_cannot_run() -> None:
    with pytest.raises(ValidationError, match="command_tts"):
        Settings(command_tts="espeak-ng 'unclosed")
    with pytest.raises(ValidationError, match="command_tts_rate"):
        Settings(command_tts_rate=12)
    assert Settings(command_tts_rate="").command_tts_rate is None
