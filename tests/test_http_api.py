"""The OpenAI-compatible and legacy HTTP API against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import struct

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.audio_check import decode, pcm_stats, read_wave

SENTENCE = "Hello world! This is a test of the Orpheus TTS system."


async def post(srv, body, path="/v1/audio/speech"):
    async with srv.http.post(srv.url + path, json=body) as r:
        return r.status, dict(r.headers), await r.read()


async def test_streaming_wav_is_one_header_then_pcm_and_decodes(serve):
    srv = await serve(tts_backend="piper")
    status, headers, data = await post(srv, {"model": "tts-1", "input": SENTENCE, "voice": "alloy"})
    assert status == 200, data[:300]
    assert headers["Content-Type"] == "audio/wav"
    assert headers["X-Backend"] == "piper"
    assert headers["X-Sample-Rate"] == "24000"
    assert headers["X-Degraded"] == "false"
    assert headers["X-Request-ID"]
    assert headers["Transfer-Encoding"] == "chunked"
    assert data[:4] == b"RIFF" and struct.unpack("<I", data[4:8])[0] == 0xFFFFFFFF
    assert data[40:44] == b"\xff\xff\xff\xff"
    assert data.count(b"RIFF") == 1  # never a header per chunk
    d = decode(data)
    assert d.sample_rate_hz == 24000
    assert 2.0 < d.duration_s < 6.0  # real speech for ~55 characters
    assert d.rms_dbfs > -35
    rate, _, frames = read_wave(data)  # Python's wave copes with the placeholder sizes
    assert rate == 24000 and len(frames) == len(data) - 44


async def test_non_streaming_wav_has_true_sizes(serve):
    srv = await serve(tts_backend="piper")
    status, headers, data = await post(srv, {"input": SENTENCE, "stream": False})
    assert status == 200
    assert int(headers["Content-Length"]) == len(data)
    riff, data_size = struct.unpack("<I", data[4:8])[0], struct.unpack("<I", data[40:44])[0]
    assert riff == len(data) - 8 and data_size == len(data) - 44
    rate, declared, frames = read_wave(data)
    assert declared * 2 == len(frames) == data_size


@pytest.mark.parametrize("fmt,container", [("mp3", "mp3"), ("opus", "ogg"), ("flac", "flac"),
                                            ("aac", "aac"), ("wav", "wav"), ("pcm", None)])
@pytest.mark.parametrize("stream", [True, False])
async def test_every_response_format_decodes(serve, fmt, container, stream):
    srv = await serve(tts_backend="synthetic")
    text = "One two three four five six seven."  # one segment: 34 chars x 60 ms
    status, headers, data = await post(srv, {"input": text, "response_format": fmt,
                                             "stream": stream})
    assert status == 200, data[:200]
    if fmt == "pcm":
        d = pcm_stats(data)
    else:
        d = decode(data, container)
    assert abs(d.duration_s - 2.04) < 0.1, (fmt, d)


async def test_sse_stream_format(serve):
    srv = await serve(tts_backend="synthetic")
    async with srv.http.post(srv.url + "/v1/audio/speech", json={
            "input": "Server sent events, please.", "stream_format": "sse",
            "response_format": "pcm"}) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in (await r.text()).splitlines()
                  if line.startswith("data: ")]
    types = [e["type"] for e in events]
    assert types[-1] == "speech.audio.done"
    assert set(types[:-1]) == {"speech.audio.delta", "speech.word"}
    pcm = b"".join(base64.b64decode(e["audio"]) for e in events if "audio" in e)
    assert abs(pcm_stats(pcm).duration_s - len("Server sent events, please.") * 0.06) < 0.1
    # Word timings: every word once, in order, exact (the synthetic engine knows them), each
    # sent before the audio that speaks it.
    words = [e for e in events if e["type"] == "speech.word"]
    assert " ".join(w["text"] for w in words) == "Server sent events, please."
    assert all(w["exact"] for w in words)
    sent_ms = 0.0
    for e in events:
        if e["type"] == "speech.audio.delta":
            sent_ms += len(base64.b64decode(e["audio"])) / 48
        elif e["type"] == "speech.word":
            assert sent_ms <= e["start_ms"] + 0.5, (e, sent_ms)
    starts = [w["start_ms"] for w in words]
    assert starts == sorted(starts) and words[-1]["end_ms"] <= 1000 * pcm_stats(pcm).duration_s + 1


async def test_speed_is_applied(serve):
    srv = await serve(tts_backend="piper")
    lengths = {}
    for speed in (0.5, 1.0, 2.0):
        status, _, data = await post(srv, {"input": SENTENCE, "speed": speed,
                                           "response_format": "pcm"})
        assert status == 200
        lengths[speed] = pcm_stats(data).duration_s
    assert lengths[0.5] > 1.6 * lengths[1.0]
    assert lengths[2.0] < 0.65 * lengths[1.0]


@pytest.mark.parametrize("speed", [0.5, 2.0, 4.0])
async def test_speed_on_engine_without_native_speed_is_time_stretched(serve, speed):
    srv = await serve(tts_backend="synthetic", synthetic_native_speed=False)
    text = "abcdefghij" * 4  # one segment, 2.4 s at speed 1.0
    _, _, data = await post(srv, {"input": text, "speed": speed, "response_format": "pcm"})
    assert abs(pcm_stats(data).duration_s - 2.4 / speed) < 0.05 + 0.03 * 2.4 / speed


@pytest.mark.parametrize("body,field,status", [
    ({"input": ""}, "input", 400),
    ({"input": "   "}, "input", 400),
    ({}, "input", 400),
    ({"input": 5}, "input", 400),
    ({"input": "hi", "stream": "maybe"}, "stream", 400),
    ({"input": "hi", "speed": 0.1}, "speed", 400),
    ({"input": "hi", "speed": 4.5}, "speed", 400),
    ({"input": "hi", "speed": "fast"}, "speed", 400),
    ({"input": "hi", "response_format": "ogg-vorbis"}, "response_format", 400),
    ({"input": "hi", "backend": "nope"}, "backend", 400),
    ({"input": "hi", "stream_format": "xml"}, "stream_format", 400),
    ({"input": "hi", "temperature": -1}, "temperature", 400),
])
async def test_bad_requests_name_the_field(serve, body, field, status):
    srv = await serve(tts_backend="synthetic")
    code, headers, data = await post(srv, body)
    assert code == status
    err = json.loads(data)
    assert err["field"] == field and err["error"]["param"] == field
    assert err["error"]["message"]


async def test_malformed_json_and_non_object_body(serve):
    srv = await serve(tts_backend="synthetic")
    async with srv.http.post(srv.url + "/v1/audio/speech", data=b"{nope",
                             headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400 and (await r.json())["field"] == "body"
    async with srv.http.post(srv.url + "/v1/audio/speech", json=["input"]) as r:
        assert r.status == 400


async def test_input_over_limit_is_413(serve):
    srv = await serve(tts_backend="synthetic", max_input_chars=1000)
    code, _, data = await post(srv, {"input": "a" * 1001})
    assert code == 413 and json.loads(data)["field"] == "input"


async def test_unknown_voice_falls_back_and_says_so(serve):
    srv = await serve(tts_backend="piper")
    code, headers, data = await post(srv, {"input": "Hi there.", "voice": "tara"})
    assert code == 200
    assert headers["X-Voice"] == "en_US-joe-medium"
    assert headers["X-Voice-Fallback"] == "tara -> en_US-joe-medium"


async def test_engine_failing_without_fallback_is_502_never_silent_200(serve):
    # The engine raises on every segment and there is no fallback: a clean 502 that says why.
    # (An upstream nobody listens on, the 503 case: test_snac_http.py, llama server down.)
    srv = await serve(tts_backend="synthetic", fallback_backend=None, synthetic_fail_times=100)
    code, headers, data = await post(srv, {"input": "Hello there."})
    assert code == 502
    assert headers["Content-Type"].startswith("application/json")
    error = json.loads(data)["error"]
    assert error["type"] == "engine_error" and "synthetic failure" in error["message"]


async def test_backend_failure_fails_over_to_fallback_and_flags_degraded(serve):
    srv = await serve(tts_backend="synthetic", fallback_backend="espeak", synthetic_fail_times=100)
    code, headers, data = await post(srv, {"input": "Hello there, general."})
    assert code == 200
    assert headers["X-Degraded"] == "true"
    assert headers["X-Backend"] == "espeak"
    assert decode(data).duration_s > 0.5


async def test_models_and_voices(serve):
    srv = await serve(tts_backend="piper")
    async with srv.http.get(srv.url + "/v1/audio/voices") as r:
        body = await r.json()
    assert body["status"] == "ok" and "en_US-joe-medium" in body["voices"]
    assert body["voice_details"][0]["language"]
    async with srv.http.get(srv.url + "/v1/models") as r:
        ids = [m["id"] for m in (await r.json())["data"]]
    assert {"tts-1", "tts-1-hd", "orpheus", "piper"} <= set(ids)


async def test_legacy_speak_writes_bounded_outputs(serve, tmp_path):
    srv = await serve(tts_backend="synthetic", outputs_max_files=2, outputs_dir=tmp_path / "out")
    files = []
    for i in range(3):
        code, _, data = await post(srv, {"text": f"Legacy number {i}.", "voice": "tara"}, "/speak")
        assert code == 200
        body = json.loads(data)
        assert set(body) == {"status", "voice", "output_file", "generation_time"}
        assert body["status"] == "ok" and body["voice"] == "tara"
        assert body["output_file"].startswith("outputs/tara_")
        files.append(body["output_file"])
        async with srv.http.get(f"{srv.url}/{body['output_file']}") as r:
            assert r.status == 200
            assert decode(await r.read()).duration_s > 0.5
    assert len(list((tmp_path / "out").glob("*.wav"))) == 2  # oldest removed
    code, _, data = await post(srv, {"voice": "tara"}, "/speak")
    assert code == 400 and json.loads(data) == {"error": "Missing 'text'"}


async def test_disconnect_stops_synthesis(serve):
    srv = await serve(tts_backend="synthetic", synthetic_rtf=2.0)
    from server.app_keys import BACKENDS, ORCHESTRATOR
    adapter = srv.app[BACKENDS].instance("synthetic")
    async with srv.http.post(srv.url + "/v1/audio/speech",
                             json={"input": "A long text. " * 40, "response_format": "pcm"}) as r:
        assert r.status == 200
        await r.content.read(4800)
    # The client is gone: within a segment the stream is cancelled and nothing keeps running.
    for _ in range(100):
        if not srv.app[ORCHESTRATOR].streams:
            break
        await asyncio.sleep(0.05)
    assert not srv.app[ORCHESTRATOR].streams
    made = adapter.chunks_made
    await asyncio.sleep(0.6)
    assert adapter.chunks_made == made
    assert made < 20  # 40 sentences would be ~150 chunks


async def metric_samples(srv) -> list[Sample]:
    async with srv.http.get(srv.url + "/metrics") as r:
        assert r.status == 200
        text = await r.text()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def sample(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of the samples `name` (a counter's `_total` suffix optional) whose labels include
    `labels`; fails when there is no such sample line."""
    found = [s.value for s in samples if s.name in (name, name + "_total")
             and labels.items() <= s.labels.items()]
    assert found, f"no sample {name}{labels}"
    return sum(found)


async def test_metrics_count_what_happened(serve):
    # One stream fails over (the engine's first segment fails), one completes; then an engine
    # slower than real time makes a listener run dry.
    srv = await serve(tts_backend="synthetic", fallback_backend="espeak", synthetic_fail_times=1)
    code, headers, _ = await post(srv, {"input": "Fail over to espeak."})
    assert code == 200 and headers["X-Backend"] == "espeak"
    code, headers, _ = await post(srv, {"input": "Count me in the metrics."})
    assert code == 200 and headers["X-Backend"] == "synthetic"
    samples = await metric_samples(srv)
    assert sample(samples, "tts_requests", backend="synthetic", status="completed") == 1
    assert sample(samples, "tts_backend_failover", from_backend="synthetic",
                  to_backend="espeak") == 1
    assert sample(samples, "tts_ttft_ms_count", backend="synthetic") == 1
    assert sample(samples, "tts_ttft_ms_sum", backend="synthetic") > 0
    assert sample(samples, "tts_chunk_ms_count", backend="synthetic") >= 1
    assert sample(samples, "tts_stream_rtf_count", backend="synthetic") == 1
    assert sample(samples, "tts_active_streams", backend="synthetic") == 0

    slow = await serve(tts_backend="synthetic", synthetic_rtf=0.5)
    code, _, _ = await post(slow, {"input": "Slower than real time.", "response_format": "pcm"})
    assert code == 200
    samples = await metric_samples(slow)
    assert sample(samples, "tts_underflow_count", backend="synthetic") >= 1
    assert sample(samples, "tts_stream_rtf_sum", backend="synthetic") < 1


async def test_healthz_and_adapters(serve):
    srv = await serve(tts_backend="synthetic")
    async with srv.http.get(srv.url + "/healthz") as r:
        assert (await r.json())["status"] == "ok"
    async with srv.http.get(srv.url + "/adapters") as r:
        body = await r.json()
    rows = {a["name"]: a for a in body["adapters"]}
    assert rows["synthetic"]["active"] and rows["synthetic"]["ready"]
    assert rows["espeak"]["ready"]
    # Not configured (no SNAC_MODEL, no llama.cpp), and it says why.
    snac = rows["snac_llamacpp"]
    assert snac["ready"] is False
    if importlib.util.find_spec("torch") is None:  # Python 3.10: the snac extra is not installed
        assert "morpheus-tts[snac]" in snac["reason"]
    else:
        assert "SNAC_MODEL not set" in snac["reason"]
