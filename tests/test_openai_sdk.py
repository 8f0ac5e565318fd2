"""The official `openai` Python client against a real Morpheus on 127.0.0.1: streamed and whole
speech, as an application written for OpenAI's API asks for it, heard by a real recognizer."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from tests.audio_check import decode, pcm_stats, read_wave
from tests.recognizer import transcribe, wer

TEXT = "The quick brown fox jumps over the lazy dog near the river bank."


def sdk(srv: Any) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0, timeout=120)


async def test_streamed_and_whole_speech_through_the_sdk(serve) -> None:  # noqa: ANN001
    srv = await serve(tts_backend="piper")
    async with sdk(srv) as client:
        chunks: list[bytes] = []
        async with client.audio.speech.with_streaming_response.create(
                model="tts-1", voice="alloy", input=TEXT, response_format="pcm") as response:
            assert response.status_code == 200
            assert response.headers["x-backend"] == "piper"
            async for chunk in response.iter_bytes():
                chunks.append(chunk)
        whole = await client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT,
                                                 response_format="wav", speed=1.0)
    assert len(chunks) > 1  # streamed in pieces, not one body at the end
    pcm = b"".join(chunks)
    streamed = pcm_stats(pcm)
    assert 2.0 < streamed.duration_s < 8.0 and streamed.rms_dbfs > -35, streamed  # 65 chars
    heard = await asyncio.to_thread(transcribe, pcm, 24000)
    assert wer(TEXT, heard) <= 0.25, heard
    # The whole file (read to its end by the SDK): a WAV of the same speech as the stream.
    rate, _, frames = read_wave(whole.content)
    assert rate == 24000 and len(frames) == len(whole.content) - 44
    got = decode(whole.content, "wav")
    assert abs(got.duration_s - streamed.duration_s) < 0.1 * streamed.duration_s, (got, streamed)
    assert got.rms_dbfs > -35


async def test_sdk_errors_are_typed(serve) -> None:  # noqa: ANN001
    srv = await serve(tts_backend="synthetic")
    async with sdk(srv) as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.audio.speech.create(model="tts-1", voice="alloy", input="")
    assert info.value.status_code == 400
