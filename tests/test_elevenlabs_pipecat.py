"""pipecat's ElevenLabsTTSService speaking through Morpheus (multi-stream-input on 127.0.0.1):
two turns, the second interrupting the first, driven with pipecat's own test pipeline."""

from __future__ import annotations

import pytest

from tests.extras import PIPECAT, import_or_skip_on_310

import_or_skip_on_310("pipecat", PIPECAT)

from pipecat.frames.frames import (  # noqa: E402
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSTextFrame,
)
from pipecat.pipeline.worker import PipelineParams  # noqa: E402
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService  # noqa: E402
from pipecat.tests.utils import SleepFrame, run_test  # noqa: E402

from server.app_keys import METRICS  # noqa: E402

MS_PER_CHAR = 60.0
FIRST = " ".join(f"Sentence number {i} of the first turn is being spoken now." for i in range(12))
SECOND = "Second turn here."


def request_counts(srv) -> dict[str, float]:
    out = {}
    for line in srv.app[METRICS].render().decode().splitlines():
        if line.startswith("tts_requests_total{"):
            status = line.split('status="')[1].split('"')[0]
            out[status] = out.get(status, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


async def test_pipecat_two_turns_the_second_interrupting_the_first(serve) -> None:
    # 4x real time: the first turn (about 40 s of audio) cannot finish before the barge-in
    srv = await serve(tts_backend="synthetic", synthetic_rtf=4.0, api_key="pc-key")
    tts = ElevenLabsTTSService(api_key="pc-key", url=srv.url.replace("http", "ws"),
                               sample_rate=24000,
                               settings=ElevenLabsTTSService.Settings(voice="sine"))
    frames = [
        LLMFullResponseStartFrame(), LLMTextFrame(FIRST), LLMFullResponseEndFrame(),
        SleepFrame(1.0), InterruptionFrame(),
        LLMFullResponseStartFrame(), LLMTextFrame(SECOND), LLMFullResponseEndFrame(),
        SleepFrame(2.0),
    ]
    down, _ = await run_test(tts, frames_to_send=frames,
                             pipeline_params=PipelineParams(audio_out_sample_rate=24000))
    audio = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    contexts = list(dict.fromkeys(f.context_id for f in audio))
    assert len(contexts) == 2
    first_ms = sum(len(f.audio) for f in audio if f.context_id == contexts[0]) / 48
    second_ms = sum(len(f.audio) for f in audio if f.context_id == contexts[1]) / 48
    assert 0 < first_ms < len(FIRST) * MS_PER_CHAR / 4  # cut off by the interruption
    assert second_ms == pytest.approx(len(SECOND) * MS_PER_CHAR, abs=100)  # spoken in full
    # Word timestamps from Morpheus's alignment: pipecat rebuilds the second turn's words.
    words = [f.text for f in down if isinstance(f, TTSTextFrame) and f.context_id == contexts[1]]
    assert words == SECOND.split()
    counts = request_counts(srv)
    assert counts.get("cancelled") == 1 and counts.get("completed") == 1
