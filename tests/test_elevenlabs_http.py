"""The official `elevenlabs` SDK against Morpheus's ElevenLabs face, over plain HTTP on 127.0.0.1.

The synthetic engine knows its own timings (60 ms per character, each word spanning its own
characters), so alignment can be checked exactly.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from elevenlabs.client import AsyncElevenLabs
from elevenlabs.core.api_error import ApiError

from tests.audio_check import decode, pcm_stats

MS_PER_CHAR = 60.0  # the synthetic engine's pace
SHORT = "Hello world, this is Morpheus."  # one segment


def client(srv, key: str | None = "test-key") -> AsyncElevenLabs:
    return AsyncElevenLabs(base_url=srv.url, api_key=key)


async def collect(agen) -> bytes:
    return b"".join([chunk async for chunk in agen])


async def test_voices_and_models(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    c = client(srv)
    voices = (await c.voices.get_all()).voices
    assert [v.voice_id for v in voices] == ["sine", "buzz"]
    assert voices[0].labels and voices[0].labels["backend"] == "synthetic"
    page = await c.voices.search(page_size=1)
    assert page.total_count == 2 and page.has_more and len(page.voices) == 1
    rest = await c.voices.search(page_size=1, next_page_token=page.next_page_token)
    assert [v.voice_id for v in rest.voices] == ["buzz"] and not rest.has_more
    models = {m.model_id: m for m in await c.models.list()}
    assert {"synthetic", "piper", "eleven_multilingual_v2", "eleven_flash_v2_5"} <= set(models)
    assert models["synthetic"].can_do_text_to_speech
    assert models["synthetic"].languages and models["synthetic"].languages[0].language_id == "en"


async def test_models_path_answers_openai_clients_in_openai_shape(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    async with srv.http.get(f"{srv.url}/v1/models") as r:
        body = await r.json()
    assert body["object"] == "list" and any(m["id"] == "tts-1" for m in body["data"])
    async with srv.http.get(f"{srv.url}/v1/models", headers={"xi-api-key": "k"}) as r:
        body = await r.json()
    assert isinstance(body, list) and body[0]["model_id"]


@pytest.mark.parametrize("fmt, rate", [("pcm_16000", 16000), ("pcm_24000", 24000),
                                       ("pcm_44100", 44100), ("pcm_8000", 8000)])
async def test_convert_pcm_at_the_asked_rate(serve, fmt: str, rate: int) -> None:
    srv = await serve(tts_backend="synthetic")
    pcm = await collect(client(srv).text_to_speech.convert("sine", text=SHORT,
                                                           output_format=fmt))
    stats = pcm_stats(pcm, rate)
    assert stats.duration_s == pytest.approx(len(SHORT) * MS_PER_CHAR / 1000, abs=0.02)
    assert stats.rms_dbfs > -30  # real audio, not silence


async def test_convert_default_is_mp3_44100(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    data = await collect(client(srv).text_to_speech.convert("sine", text=SHORT,
                                                            model_id="eleven_multilingual_v2"))
    d = decode(data)
    assert d.codec.startswith("mp3") and d.sample_rate_hz == 44100
    assert d.duration_s == pytest.approx(len(SHORT) * MS_PER_CHAR / 1000, abs=0.08)
    assert d.rms_dbfs > -30


@pytest.mark.parametrize("fmt, codec, rate", [("mp3_22050_32", "mp3", 22050),
                                              ("opus_48000_64", "opus", 48000),
                                              ("wav_16000", "pcm_s16le", 16000)])
async def test_stream_encodes_each_format(serve, fmt: str, codec: str, rate: int) -> None:
    srv = await serve(tts_backend="synthetic")
    text = "First sentence is here. And a second one follows it."
    chunks = [c async for c in client(srv).text_to_speech.stream("sine", text=text,
                                                                 output_format=fmt)]
    assert len(chunks) > 1  # streamed as made, not one blob
    d = decode(b"".join(chunks))
    assert d.codec.startswith(codec) and d.sample_rate_hz == rate
    assert d.duration_s == pytest.approx(len(text) * MS_PER_CHAR / 1000, abs=0.12)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
async def test_g711_is_headerless_8k(serve, law: str) -> None:
    srv = await serve(tts_backend="synthetic")
    data = await collect(client(srv).text_to_speech.convert("sine", text=SHORT,
                                                            output_format=f"{law}_8000"))
    assert len(data) == pytest.approx(len(SHORT) * MS_PER_CHAR * 8, abs=160)  # 1 byte/sample
    d = decode(data, "mulaw" if law == "ulaw" else "alaw")
    assert d.rms_dbfs > -30


async def test_speed_from_voice_settings(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    pcm = await collect(client(srv).text_to_speech.convert(
        "sine", text=SHORT, output_format="pcm_24000", voice_settings={"speed": 2.0}))
    assert pcm_stats(pcm).duration_s == pytest.approx(len(SHORT) * MS_PER_CHAR / 2000, abs=0.02)


def check_alignment(chars: list[str], starts: list[float], ends: list[float], text: str) -> None:
    assert "".join(chars) == text
    assert len(chars) == len(starts) == len(ends)
    assert all(b >= a for a, b in zip(starts, starts[1:], strict=False))
    assert all(e >= s for s, e in zip(starts, ends, strict=True))


async def test_convert_with_timestamps_is_exact_on_the_synthetic_engine(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    r = await client(srv).text_to_speech.convert_with_timestamps(
        "sine", text=SHORT, output_format="pcm_24000")
    a = r.alignment
    check_alignment(a.characters, a.character_start_times_seconds, a.character_end_times_seconds,
                    SHORT)
    for i, ch in enumerate(SHORT):  # every character at 60 ms steps, to the millisecond
        if ch != " ":
            assert a.character_start_times_seconds[i] == pytest.approx(i * 0.06, abs=0.001)
    pcm = base64.b64decode(r.audio_base_64)
    assert a.character_end_times_seconds[-1] == pytest.approx(pcm_stats(pcm).duration_s,
                                                              abs=0.001)
    n = r.normalized_alignment
    assert "".join(n.characters) == " ".join(SHORT.split())


async def test_stream_with_timestamps_alignment_reassembles_the_input(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    text = "  First sentence here. Then a second, longer one with more words in it!  "
    chars: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    audio = b""
    lines = 0
    async for chunk in client(srv).text_to_speech.stream_with_timestamps(
            "sine", text=text, output_format="pcm_24000"):
        lines += 1
        audio += base64.b64decode(chunk.audio_base_64)
        if chunk.alignment:
            chars += chunk.alignment.characters
            starts += chunk.alignment.character_start_times_seconds
            ends += chunk.alignment.character_end_times_seconds
    assert lines > 2
    check_alignment(chars, starts, ends, text)  # absolute seconds, across chunks
    assert ends[-1] == pytest.approx(pcm_stats(audio).duration_s, abs=0.06)


async def test_stream_with_timestamps_is_ndjson_for_plain_clients(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    async with srv.http.post(f"{srv.url}/v1/text-to-speech/sine/stream/with-timestamps",
                             params={"output_format": "pcm_24000"}, json={"text": SHORT}) as r:
        assert r.status == 200
        lines = [json.loads(line) for line in (await r.text()).splitlines() if line.strip()]
    assert all(set(x) == {"audio_base64", "alignment", "normalized_alignment"} for x in lines)


async def test_unknown_voice_falls_back_and_says_so(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    async with srv.http.post(f"{srv.url}/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM",
                             params={"output_format": "pcm_24000"}, json={"text": SHORT}) as r:
        assert r.status == 200
        assert r.headers["X-Voice-Fallback"] == "21m00Tcm4TlvDq8ikWAM -> sine"
        assert len(await r.read()) > 24000


async def test_model_id_of_a_backend_selects_it(serve) -> None:
    srv = await serve(tts_backend="synthetic", backends="synthetic,espeak")
    async with srv.http.post(f"{srv.url}/v1/text-to-speech/x/stream",
                             params={"output_format": "pcm_24000"},
                             json={"text": SHORT, "model_id": "espeak"}) as r:
        assert r.status == 200 and r.headers["X-Backend"] == "espeak"
        assert pcm_stats(await r.read()).rms_dbfs > -40


BAD_BODIES = [
    ({"text": 5}, ["body", "text"]),
    ({}, ["body", "text"]),
    ({"text": ""}, ["body", "text"]),
    ({"text": "\u0000\u0001 "}, ["body", "text"]),
    ({"text": "hi", "voice_settings": {"speed": "fast"}}, ["body", "voice_settings", "speed"]),
    ({"text": "hi", "voice_settings": {"speed": 9}}, ["body", "voice_settings", "speed"]),
    ({"text": "hi", "model_id": 3}, ["body", "model_id"]),
    ({"text": "hi", "model_id": "piper"}, ["body", "model_id"]),  # a backend not enabled
    ({"text": "hi", "seed": -1}, ["body", "seed"]),
]


@pytest.mark.parametrize("route", ["", "/stream", "/with-timestamps", "/stream/with-timestamps"])
async def test_bad_input_is_422_naming_the_field_on_every_route(serve, route: str) -> None:
    srv = await serve(tts_backend="synthetic", backends="synthetic")
    url = f"{srv.url}/v1/text-to-speech/sine{route}"
    for body, loc in BAD_BODIES:
        async with srv.http.post(url, json=body) as r:
            assert r.status == 422, (body, await r.text())
            assert (await r.json())["detail"][0]["loc"] == loc, body
    for query, field in (({"output_format": "mp3_1_2"}, "output_format"),
                         ({"output_format": "flac_44100"}, "output_format"),
                         ({"optimize_streaming_latency": "9"}, "optimize_streaming_latency"),
                         ({"optimize_streaming_latency": "x"}, "optimize_streaming_latency")):
        async with srv.http.post(url, params=query, json={"text": "hi"}) as r:
            assert r.status == 422, (query, await r.text())
            assert (await r.json())["detail"][0]["loc"] == ["query", field]
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        async with srv.http.post(url, data=raw,
                                 headers={"Content-Type": "application/json"}) as r:
            assert r.status == 422, raw
            assert (await r.json())["detail"][0]["loc"] == ["body"]


async def test_sdk_sees_422_as_unprocessable_entity(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    with pytest.raises(ApiError) as e:
        await collect(client(srv).text_to_speech.convert("sine", text="",
                                                         output_format="pcm_24000"))
    assert e.value.status_code == 422


async def test_nul_inside_text_is_cleaned_and_alignment_still_covers_the_input(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    text = "Hello \u0000 there."
    async with srv.http.post(f"{srv.url}/v1/text-to-speech/sine/with-timestamps",
                             params={"output_format": "pcm_24000"}, json={"text": text}) as r:
        assert r.status == 200
        body = await r.json()
    assert "".join(body["alignment"]["characters"]) == text


async def test_engine_down_is_503_in_elevenlabs_shape(serve) -> None:
    srv = await serve(tts_backend="synthetic", synthetic_fail_times=5, fallback_backend="")
    async with srv.http.post(f"{srv.url}/v1/text-to-speech/sine/stream",
                             json={"text": SHORT}) as r:
        assert r.status in (502, 503)
        detail = (await r.json())["detail"]
        assert detail["status"] in ("engine_error", "backend_unavailable") and detail["message"]


@pytest.mark.parametrize("path, method", [("/v1/text-to-speech/sine", "post"),
                                          ("/v1/text-to-speech/sine/stream", "post"),
                                          ("/v1/voices", "get"), ("/v2/voices", "get")])
async def test_api_key_is_checked(serve, path: str, method: str) -> None:
    srv = await serve(tts_backend="synthetic", api_key="s3cret")
    kwargs = {"json": {"text": SHORT}} if method == "post" else {}
    for headers, status in (({}, 401), ({"xi-api-key": "wrong"}, 401),
                            ({"xi-api-key": "s3cret"}, 200)):
        async with srv.http.request(method, f"{srv.url}{path}", headers=headers,
                                    **kwargs) as r:
            assert r.status == status, (headers, await r.text())
            if status == 401:  # JSON (ElevenLabs' shape, or the guard middleware's)
                assert isinstance(await r.json(), dict)


async def test_sdk_with_the_right_key_and_a_wrong_one(serve) -> None:
    srv = await serve(tts_backend="synthetic", api_key="s3cret")
    assert "synthetic" in [m.model_id for m in await client(srv, "s3cret").models.list()]
    with pytest.raises(ApiError) as e:
        await client(srv, "nope").models.list()
    assert e.value.status_code == 401


def test_g711_round_trip_is_close() -> None:
    """The encoder side of G.711: decoded μ-law/A-law stays within the codec's error."""
    from dsp.encoders import G711Encoder

    t = np.arange(8000) / 8000
    x = (0.5 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    for law, fmt in (("ulaw", "mulaw"), ("alaw", "alaw")):
        enc = G711Encoder(law, 8000)
        data = enc.encode(x.tobytes()[:1001]) + enc.encode(x.tobytes()[1001:]) + enc.flush()
        assert len(data) == 8000  # one byte per sample, the odd byte carried over
        d = decode(data, fmt)
        assert d.rms_dbfs == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.5)


async def test_whole_responses_past_the_ram_spool_stay_exact(serve) -> None:
    """Whole files are spooled (to disk past 4 MB): sizes, WAV header and base64 still exact."""
    from tests.audio_check import read_wave
    from tests.sim import front_text

    srv = await serve(tts_backend="synthetic")
    text = " ".join(f"Sentence {i} is one more in a long read." for i in range(22))  # ~55 s
    c = client(srv)
    wav = await collect(c.text_to_speech.convert("sine", text=text, output_format="wav_48000"))
    rate, declared, frames = read_wave(wav)
    assert rate == 48000 and declared * 2 == len(frames) == len(wav) - 44 > 4 * 1024 * 1024
    # segments drop the spaces between them and crossfade at the seams: within 2%
    said = front_text(text)  # "Sentence one is one more ..."
    assert declared / rate == pytest.approx(len(said) * MS_PER_CHAR / 1000, rel=0.02)
    r = await c.text_to_speech.convert_with_timestamps("sine", text=text,
                                                       output_format="pcm_48000")
    pcm = base64.b64decode(r.audio_base_64, validate=True)
    assert pcm == frames  # the same audio, byte for byte
    assert "".join(r.alignment.characters) == text
