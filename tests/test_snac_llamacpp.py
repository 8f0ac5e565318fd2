"""SnacLlamaCppAdapter end to end against a real llama.cpp-protocol server on loopback."""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from adapters.base import AudioChunk, Sampling, TTSInput
from adapters.errors import (
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    EngineError,
    NoAudioError,
    UpstreamRejected,
)
from adapters.orpheus.adapter import SnacLlamaCppAdapter
from adapters.orpheus.llama_inproc import llama_cpp_available
from adapters.orpheus.tokens import SAMPLES_PER_FRAME
from adapters.orpheus.voices import EMOTION_TAGS, LANGUAGES, ORPHEUS_VOICES
from server.config import Settings
from tests.extras import torch_or_skip
from tests.llama_protocol_server import (
    LlamaProtocolServer,
    Script,
    refused_url,
    script_from_tokens,
)
from tests.snac_fixture import frames_to_token_text, random_frames, write_snac_checkpoint


@pytest.fixture(scope="module")
def torch() -> ModuleType:
    return torch_or_skip()


@pytest.fixture(scope="module")
def snac_dir(tmp_path_factory: pytest.TempPathFactory, torch: ModuleType) -> Path:
    return write_snac_checkpoint(tmp_path_factory.mktemp("snac"))


@pytest.fixture
async def adapters(snac_dir: Path) -> AsyncIterator[Callable[..., SnacLlamaCppAdapter]]:
    made: list[SnacLlamaCppAdapter] = []

    def make(url: str, **options: Any) -> SnacLlamaCppAdapter:
        adapter = SnacLlamaCppAdapter.from_options(Settings(
            snac_url=url, snac_model=str(snac_dir), snac_device="cpu", **options).model_dump())
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()


async def collect(adapter: SnacLlamaCppAdapter, req: TTSInput) -> list[AudioChunk]:
    return [chunk async for chunk in adapter.synth_stream(req)]


def tokens_for(frames: int, seed: int = 0) -> list[str]:
    return frames_to_token_text(random_frames(frames, seed=seed))


def total_samples(chunks: list[AudioChunk]) -> int:
    return sum(c.samples for c in chunks)


# ---------------------------------------------------------------------------- happy paths


@pytest.mark.parametrize("per_event,split_tokens,split_writes", [
    (1, False, False),  # llama.cpp: one token per event
    (3, False, False),  # koboldcpp-style: several tokens per event
    (2, True, False),  # tokens cut across events
    (1, False, True),  # SSE lines cut across TCP writes
])
async def test_frames_in_audio_out(adapters: Callable[..., SnacLlamaCppAdapter], per_event: int,
                                   split_tokens: bool, split_writes: bool) -> None:
    script = script_from_tokens(tokens_for(6), per_event=per_event, split_tokens=split_tokens)
    script.split_writes = split_writes
    async with LlamaProtocolServer(script) as server:
        chunks = await collect(adapters(server.url), TTSInput(text="Hello there."))
    assert total_samples(chunks) == 6 * SAMPLES_PER_FRAME
    assert chunks[-1].is_final and not any(c.is_final for c in chunks[:-1])
    assert all(c.sample_rate_hz == 24_000 and c.pcm for c in chunks)


async def test_request_body_is_what_llama_cpp_needs(
        adapters: Callable[..., SnacLlamaCppAdapter]) -> None:
    async with LlamaProtocolServer(script_from_tokens(tokens_for(2))) as server:
        adapter = adapters(server.url, orpheus_max_tokens=1000, orpheus_model_name="orph-q8")
        await collect(adapter, TTSInput(text="Hi <laugh> there", voice="leo"))
        await collect(adapter, TTSInput(text="Again", voice="nobody-by-that-name",
                                        sampling=Sampling(temperature=0.2, top_p=0.5,
                                                          repetition_penalty=1.0, max_tokens=77)))
    first, second = (r.body for r in server.requests)
    assert first["prompt"] == ("<custom_token_3><|begin_of_text|>leo: Hi <laugh> there<|eot_id|>"
                               "<custom_token_4><custom_token_5><custom_token_1>")
    assert first["stream"] is True and first["cache_prompt"] is True
    assert first["max_tokens"] == first["n_predict"] == 1000
    assert first["stop"] == ["<custom_token_2>"]
    assert first["model"] == "orph-q8"
    assert (first["temperature"], first["top_p"]) == (0.6, 0.9)
    assert first["repeat_penalty"] == first["repetition_penalty"] == 1.1
    assert "tara: Again" in second["prompt"]  # unknown voice -> tara
    assert (second["temperature"], second["top_p"], second["max_tokens"]) == (0.2, 0.5, 77)
    assert second["repeat_penalty"] == 1.1  # never below what Orpheus needs
    # both requests went over one kept-alive connection
    assert len(server.connections) == 1 and server.connections[0].requests == 2


async def test_control_tokens_and_text_between_tokens_are_ignored(
        adapters: Callable[..., SnacLlamaCppAdapter]) -> None:
    tokens = tokens_for(6, seed=3)
    tokens.insert(7 * 2 + 4, "<custom_token_5>")
    tokens.insert(7 * 3 + 1, " hmm ")
    async with LlamaProtocolServer(script_from_tokens(tokens, per_event=2)) as server:
        chunks = await collect(adapters(server.url), TTSInput(text="x"))
    assert total_samples(chunks) == 6 * SAMPLES_PER_FRAME


async def test_out_of_range_token_costs_exactly_one_frame(
        adapters: Callable[..., SnacLlamaCppAdapter]) -> None:
    tokens = tokens_for(6, seed=4)
    tokens[7 * 2 + 3] = "<custom_token_99999>"
    async with LlamaProtocolServer(script_from_tokens(tokens)) as server:
        chunks = await collect(adapters(server.url), TTSInput(text="x"))
    assert total_samples(chunks) == 5 * SAMPLES_PER_FRAME


async def test_chunks_follow_target_chunk(adapters: Callable[..., SnacLlamaCppAdapter]) -> None:
    script = script_from_tokens(tokens_for(16), tokens_per_s=700)  # paced: ~10 ms per token
    async with LlamaProtocolServer(script) as server:
        chunks = await collect(adapters(server.url, snac_first_chunk=7),
                               TTSInput(text="x", target_chunk=28))
    sizes = [c.samples // SAMPLES_PER_FRAME for c in chunks]
    assert sum(sizes) == 16
    assert sizes[0] >= 1
    assert all(s >= 4 for s in sizes[1:-1]), sizes  # no chunk below the target but the ends


@pytest.mark.parametrize("low_latency,tokens_sent,first_audio", [
    (False, 20, False),  # the first frame waits for two frames of lookahead...
    (False, 21, True),  # ...and comes with the 21st token
    (True, 13, False),  # low latency: one frame of lookahead...
    (True, 14, True),  # ...the 14th token is enough
])
async def test_first_audio_needs_exactly_its_lookahead(
        adapters: Callable[..., SnacLlamaCppAdapter], low_latency: bool, tokens_sent: int,
        first_audio: bool) -> None:
    script = script_from_tokens(tokens_for(6))
    script.fail, script.fail_after_events = "stall", tokens_sent  # then silence, socket open
    async with LlamaProtocolServer(script) as server:
        adapter = adapters(server.url)
        await adapter.warmup()
        stream = adapter.synth_stream(TTSInput(text="x", low_latency=low_latency))
        async with aclosing(stream):
            try:  # audio due comes however slow the decode; none comes in a while otherwise
                chunk = await asyncio.wait_for(stream.__anext__(), 30 if first_audio else 3)
            except asyncio.TimeoutError:
                chunk = None
    assert (chunk is not None) == first_audio
    if chunk is not None:
        assert chunk.samples == SAMPLES_PER_FRAME and not chunk.is_final


async def test_low_latency_stream_is_complete(
        adapters: Callable[..., SnacLlamaCppAdapter]) -> None:
    script = script_from_tokens(tokens_for(12), tokens_per_s=400)
    # The first frame and its one frame of lookahead, then a pause: the first chunk is that
    # one frame however late a busy machine gets to it (frames that pile up go together).
    script.pause = (14, 1.0)
    async with LlamaProtocolServer(script) as server:
        chunks = await collect(adapters(server.url),
                               TTSInput(text="x", low_latency=True, target_chunk=14))
    assert total_samples(chunks) == 12 * SAMPLES_PER_FRAME
    assert chunks[0].samples == SAMPLES_PER_FRAME


async def test_concurrent_streams_share_the_model(
        adapters: Callable[..., SnacLlamaCppAdapter]) -> None:
    def script(body: dict[str, Any]) -> Script:
        frames = 4 if "one" in body["prompt"] else 7
        return script_from_tokens(tokens_for(frames), per_event=2, tokens_per_s=1500)

    async with LlamaProtocolServer(script) as server:
        adapter = adapters(server.url)
        a, b = await asyncio.gather(collect(adapter, TTSInput(text="one")),
                                    collect(adapter, TTSInput(text="two")))
    assert total_samples(a) == 4 * SAMPLES_PER_FRAME
    assert total_samples(b) == 7 * SAMPLES_PER_FRAME


# ---------------------------------------------------------------------------- cancellation


# The upstream would stream for 35 s (2000 frames at 400 tokens/s): a socket the client closes
# shows on the server long before that, mid-script. How soon (milliseconds, on the one loop)
# is a figure for bench/, not a bound a busy machine could keep here.
LONG_SCRIPT_FRAMES, LONG_SCRIPT_TOKENS_PER_S = 2000, 400


def assert_closed_mid_script(server: LlamaProtocolServer, script: Script) -> None:
    assert server.connections[0].closed_by == "client"
    assert 0 < server.requests[0].events_sent < len(script.events)


async def test_closing_the_stream_closes_the_upstream_socket(
        adapters: Callable[..., SnacLlamaCppAdapter]) -> None:
    script = script_from_tokens(tokens_for(LONG_SCRIPT_FRAMES),
                                tokens_per_s=LONG_SCRIPT_TOKENS_PER_S)
    async with LlamaProtocolServer(script) as server:
        adapter = adapters(server.url)
        async with aclosing(adapter.synth_stream(TTSInput(text="long"))) as stream:
            first = await stream.__anext__()
            assert first.samples > 0
        await server.wait_all_closed(timeout_s=5.0)
        assert_closed_mid_script(server, script)
        # and the adapter still works afterwards, on a fresh connection
        server._script = script_from_tokens(tokens_for(2))
        assert total_samples(await collect(adapter, TTSInput(text="again"))) == 2 * 2048


async def test_cancelling_the_task_closes_the_upstream_socket(
        adapters: Callable[..., SnacLlamaCppAdapter]) -> None:
    script = script_from_tokens(tokens_for(LONG_SCRIPT_FRAMES),
                                tokens_per_s=LONG_SCRIPT_TOKENS_PER_S)
    async with LlamaProtocolServer(script) as server:
        adapter = adapters(server.url)
        got_audio = asyncio.Event()

        async def consume() -> None:
            async for _ in adapter.synth_stream(TTSInput(text="long")):
                got_audio.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(got_audio.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await server.wait_all_closed(timeout_s=5.0)
        assert_closed_mid_script(server, script)


# ---------------------------------------------------------------------------- failures


async def test_refused_is_unavailable(adapters: Callable[..., SnacLlamaCppAdapter]) -> None:
    with pytest.raises(BackendUnavailable):
        await collect(adapters(refused_url()), TTSInput(text="x"))


@pytest.mark.parametrize("fail,error", [
    ("http500", EngineError),
    ("http503", BackendUnavailable),
    ("http400", UpstreamRejected),
    ("drop", EngineError),
    ("error_event", EngineError),
])
async def test_upstream_failures_are_typed(adapters: Callable[..., SnacLlamaCppAdapter],
                                           fail: str, error: type[Exception]) -> None:
    script = script_from_tokens(tokens_for(5))
    script.fail = fail  # type: ignore[assignment]
    script.fail_after_events = 10
    async with LlamaProtocolServer(script) as server:
        with pytest.raises(error) as info:
            await collect(adapters(server.url), TTSInput(text="x"))
    if fail == "http400":
        assert not info.value.retryable  # type: ignore[attr-defined]
    assert not isinstance(info.value, BackendTimeout)


async def test_stall_times_out_and_closes(adapters: Callable[..., SnacLlamaCppAdapter]) -> None:
    script = script_from_tokens(tokens_for(5))
    script.fail, script.fail_after_events = "stall", 10
    async with LlamaProtocolServer(script) as server:
        adapter = adapters(server.url, orpheus_timeout_s=0.3)
        await adapter.warmup()  # loading SNAC is not part of the stall (seconds on a busy box)
        started = time.monotonic()
        with pytest.raises(BackendTimeout):
            await collect(adapter, TTSInput(text="x"))
        assert 0.3 <= time.monotonic() - started < 2.0
        await server.wait_all_closed(timeout_s=1.0)


async def test_text_without_audio_tokens_is_an_error(
        adapters: Callable[..., SnacLlamaCppAdapter]) -> None:
    script = Script(events=["Sure", "! Here", " is your", " speech."])
    async with LlamaProtocolServer(script) as server:
        with pytest.raises(NoAudioError):
            await collect(adapters(server.url), TTSInput(text="x"))


async def test_endless_text_gives_up_early(adapters: Callable[..., SnacLlamaCppAdapter]) -> None:
    script = Script(events=["word "] * 5000)
    async with LlamaProtocolServer(script) as server:
        with pytest.raises(NoAudioError, match="gave up"):
            await collect(adapters(server.url), TTSInput(text="x"))
        assert len(server.requests) == 1


async def test_only_bad_frames_is_an_error(adapters: Callable[..., SnacLlamaCppAdapter]) -> None:
    tokens = ["<custom_token_10>"] * 21  # slot-0 token everywhere: slots 1..6 out of range
    async with LlamaProtocolServer(script_from_tokens(tokens)) as server:
        with pytest.raises(NoAudioError, match="3 bad frames"):
            await collect(adapters(server.url), TTSInput(text="x"))


async def test_empty_text_is_a_bad_request(adapters: Callable[..., SnacLlamaCppAdapter]) -> None:
    with pytest.raises(BadRequest):
        await collect(adapters(refused_url()), TTSInput(text="  "))


# ---------------------------------------------------------------------------- health & config


async def test_health(adapters: Callable[..., SnacLlamaCppAdapter]) -> None:
    async with LlamaProtocolServer(script_from_tokens(tokens_for(1))) as server:
        adapter = adapters(server.url)
        health = await adapter.health()
        assert health.ready and health.reason is None and health.backend == "snac_llamacpp"
        server.loading = True
        health = await adapter.health()
        assert not health.ready and "loading" in (health.reason or "")
    health = await adapters(refused_url()).health()
    assert not health.ready and "unreachable" in (health.reason or "")


async def test_health_without_snac_model(torch: ModuleType) -> None:
    adapter = SnacLlamaCppAdapter.from_options(Settings(snac_model=None).model_dump())
    health = await adapter.health()
    assert not health.ready and "SNAC_MODEL not set" in (health.reason or "")
    with pytest.raises(BackendUnavailable, match="SNAC_MODEL not set"):
        await collect(adapter, TTSInput(text="x"))
    await adapter.aclose()


async def test_health_with_incomplete_snac_dir(tmp_path: Path, torch: ModuleType) -> None:
    adapter = SnacLlamaCppAdapter.from_options(Settings(snac_model=str(tmp_path)).model_dump())
    assert "no config.json" in ((await adapter.health()).reason or "")


async def test_health_names_the_missing_snac_extra(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real_find_spec(name, *a))
    adapter = SnacLlamaCppAdapter.from_options(Settings(snac_model=str(tmp_path)).model_dump())
    health = await adapter.health()
    assert not health.ready and "torch" in (health.reason or "")
    assert "morpheus-tts[snac]" in (health.reason or "")


async def test_inprocess_gguf_reports_what_is_missing(
        adapters: Callable[..., SnacLlamaCppAdapter], tmp_path: Path) -> None:
    adapter = adapters(refused_url(), orpheus_gguf=str(tmp_path / "orpheus.gguf"))
    health = await adapter.health()
    assert not health.ready and health.loader == "llama-cpp-python in-process"
    if llama_cpp_available():
        assert "does not exist" in (health.reason or "")
    else:
        assert "pip install morpheus-tts[orpheus]" in (health.reason or "")
    with pytest.raises(BackendUnavailable):
        await collect(adapter, TTSInput(text="x"))


def test_from_settings_keys() -> None:
    options = Settings(snac_model="/m", snac_target_chunk=42, orpheus_top_p=0.7).model_dump()
    config = SnacLlamaCppAdapter.from_options(options).config
    assert (config.model_dir, config.target_chunk_tokens, config.top_p) == ("/m", 42, 0.7)
    assert config.url == "http://127.0.0.1:8080/v1/completions"
    assert config.gguf_path is None and config.window_frames == 4
    kept = Settings(snac_kept_slice="3072,5120").model_dump()
    assert SnacLlamaCppAdapter.from_options(kept).config.kept_slice == (3072, 5120)


def test_voices_and_capabilities() -> None:
    adapter = SnacLlamaCppAdapter.from_options(Settings().model_dump())
    voices = adapter.voices()
    assert len(voices) == len(ORPHEUS_VOICES) == 25
    assert {v.language for v in voices} == set(LANGUAGES) and len(LANGUAGES) == 8
    assert voices[0].id == "tara" == adapter.default_voice()
    assert all(v.gender in ("female", "male") and v.description for v in voices)
    caps = SnacLlamaCppAdapter.capabilities
    assert caps.native_rate_hz == 24_000 and caps.chunk_unit == "tokens"
    assert caps.streams_sub_sentence and not caps.native_speed
    assert "<laugh>" in caps.emotion_tags and "<한숨>" in caps.emotion_tags
    assert caps.emotion_tags == EMOTION_TAGS
