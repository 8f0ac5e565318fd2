"""Orpheus/SNAC end to end: HTTP request -> orchestrator -> llama.cpp-protocol server -> SNAC."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapters.orpheus.tokens import SAMPLES_PER_FRAME
from tests.audio_check import pcm_stats
from tests.extras import torch_or_skip
from tests.llama_protocol_server import LlamaProtocolServer, refused_url, script_from_tokens
from tests.snac_fixture import frames_to_token_text, random_frames, write_snac_checkpoint


@pytest.fixture(scope="module")
def snac_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch_or_skip()
    return write_snac_checkpoint(tmp_path_factory.mktemp("snac_http"))


async def test_orpheus_request_streams_every_frame(serve, snac_dir):
    frames = 9
    script = script_from_tokens(frames_to_token_text(random_frames(frames)), per_event=2,
                                tokens_per_s=400)
    async with LlamaProtocolServer(script) as llama:
        srv = await serve(tts_backend="snac_llamacpp", snac_url=llama.url,
                          snac_model=str(snac_dir), snac_device="cpu")
        async with srv.http.post(srv.url + "/v1/audio/speech", json={
                "model": "orpheus", "input": "Hi <laugh> there.", "voice": "leo",
                "response_format": "pcm"}) as r:
            assert r.status == 200, await r.text()
            assert r.headers["X-Backend"] == "snac_llamacpp"
            assert r.headers["X-Voice"] == "leo"
            pcm = await r.read()
        assert llama.requests[0].body["prompt"].startswith("<custom_token_3><|begin_of_text|>leo: Hi <laugh> there.")
        async with srv.http.get(srv.url + "/v1/audio/voices") as v:
            voices = await v.json()
    # one segment: every frame arrives as 2048 samples, none lost at either end
    assert len(pcm) // 2 == frames * SAMPLES_PER_FRAME
    assert pcm_stats(pcm).rms_dbfs > -60
    assert len(voices["voices"]) >= 24 and "tara" in voices["voices"]
    assert {d["language"] for d in voices["voice_details"]} >= {"en", "fr", "de", "ko"}


async def test_llama_server_down_fails_over_to_espeak(serve, snac_dir):
    srv = await serve(tts_backend="snac_llamacpp", snac_url=refused_url(),
                      snac_model=str(snac_dir), snac_device="cpu", fallback_backend="espeak")
    async with srv.http.post(srv.url + "/v1/audio/speech",
                             json={"input": "The server is down.", "response_format": "pcm"}) as r:
        assert r.status == 200
        assert r.headers["X-Backend"] == "espeak"
        assert r.headers["X-Degraded"] == "true"
        assert pcm_stats(await r.read()).duration_s > 0.5


async def test_llama_server_down_without_fallback_is_503(serve, snac_dir):
    srv = await serve(tts_backend="snac_llamacpp", snac_url=refused_url(),
                      snac_model=str(snac_dir), snac_device="cpu", fallback_backend=None)
    async with srv.http.post(srv.url + "/v1/audio/speech", json={"input": "Down."}) as r:
        assert r.status == 503
        body = await r.json()
    assert "refused" in body["error"]["message"].lower() or "connect" in body["error"]["message"].lower()


async def test_concurrent_orpheus_streams_share_one_decoder(serve, snac_dir):
    """Four listeners at once, tokens paced per stream: every stream gets every frame of its
    own text, and the one decoder worker decoded all of them (its figures on /metrics)."""
    from tests.llama_protocol_server import orpheus_script

    texts = [f"Listener {name} hears this sentence." for name in ("one", "two", "three", "four")]
    frames = [orpheus_script({"prompt": f"tara: {t}<|eot_id|>"}).events for t in texts]
    async with LlamaProtocolServer(lambda body: orpheus_script(body, realtime=4.0)) as llama:
        srv = await serve(tts_backend="snac_llamacpp", snac_url=llama.url,
                          snac_model=str(snac_dir), snac_device="cpu", fallback_backend=None,
                          stall_timeout_ms=60_000)

        async def speak(text: str) -> bytes:
            async with srv.http.post(srv.url + "/v1/audio/speech", json={
                    "input": text, "voice": "tara", "response_format": "pcm"}) as r:
                assert r.status == 200, await r.text()
                return await r.read()

        pcms = await asyncio.gather(*(speak(t) for t in texts))
        async with srv.http.get(srv.url + "/metrics") as r:
            metrics = {line.split("{")[0]: float(line.rsplit(" ", 1)[1])
                       for line in (await r.text()).splitlines()
                       if line.startswith("tts_snac_")}
    assert len(llama.requests) == 4
    for pcm, events in zip(pcms, frames, strict=True):
        assert len(pcm) // 2 == len(events) // 7 * SAMPLES_PER_FRAME
        assert pcm_stats(pcm).rms_dbfs > -60
    total = sum(len(e) // 7 for e in frames)
    assert metrics["tts_snac_frames_new_total"] == total
    assert metrics["tts_snac_windows_dropped_total"] == 0
    assert metrics["tts_snac_frames_decoded_total"] >= total
    assert metrics["tts_snac_windows_waiting"] == 0
