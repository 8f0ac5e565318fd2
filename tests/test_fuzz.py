"""Property-based requests against a real server: random JSON shapes, wrong types, huge and
negative numbers, control characters and NUL in every string, invalid UTF-8, unknown fields,
bogus charsets. Never a 500, never a crash, always a JSON error naming the problem; the server
speaks normally afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from tests.live_server import LiveServer, live_server

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

nasty_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec=None, categories=("Cc", "Cs", "Co", "Cn", "Zs")),
            max_size=20),
    st.sampled_from(["", " ", "\x00", "hi \x00 there", "\ud800", "a\nb", "\r\n", "\ufffe",
                     "<laugh>", "...", "x" * 800, "piper", "espeak", "synthetic", "pcm",
                     "mp3", "sse"]),
)
numbers = st.one_of(st.integers(min_value=-(10**20), max_value=10**20),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from([0, -1, 1e308, -1e308, 2**63, 0.0001]))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, nasty_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(nasty_text, inner, max_size=4)),
    max_leaves=12)


def body_for(fields: list[str]) -> st.SearchStrategy[dict]:
    """Objects with the route's fields (any types, any subset) plus unknown fields."""
    known = st.fixed_dictionaries({}, optional={f: json_values for f in fields})
    return st.builds(lambda a, b: {**b, **a}, known,
                     st.dictionaries(nasty_text, json_values, max_size=3))


raw_bodies = st.one_of(
    st.binary(max_size=200),  # invalid UTF-8, truncated JSON, anything
    st.sampled_from([b"", b"null", b"[]", b'"text"', b"{", b'{"input": NaN}', b"\xff\xfe{}",
                     b'{"input": "\\ud800"}', b'{"input": 1e999}']),
)
content_types = st.sampled_from([
    "application/json", "application/json; charset=utf-8", "application/json; charset=bogus",
    "application/json; charset=latin-1", "text/plain", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", "", "application/merge-patch+json"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # espeak by default (fast, and a real engine: NUL in its argv was a 500 once); bodies may
    # pick piper or synthetic with `backend` / `model`.
    with live_server(tmp_path_factory.mktemp("fuzz"), tts_backend="espeak",
                     synthetic_rtf="0", queue_timeout_s="2") as srv:
        yield srv


def check(r: httpx.Response) -> None:
    assert r.status_code < 500 or r.status_code == 503, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        err = r.json()  # always JSON
        message = (err.get("error") or {}).get("message") if isinstance(err.get("error"), dict) \
            else err.get("error") or err.get("detail")
        assert message, err
    elif r.headers.get("content-type", "").startswith("audio/"):
        assert len(r.content) > 44


def post(server: LiveServer, path: str, content: bytes, ctype: str) -> httpx.Response:
    headers = {"Content-Type": ctype} if ctype else {}
    return server.http.post(server.url + path, content=content, headers=headers, timeout=30)


SPEECH_FIELDS = ["input", "model", "voice", "response_format", "speed", "stream",
                 "stream_format", "low_latency", "backend", "language", "instructions",
                 "temperature", "top_p", "repetition_penalty"]


@FUZZ
@given(body=body_for(SPEECH_FIELDS))
def test_speech_json_shapes(server: LiveServer, body: dict) -> None:
    check(post(server, "/v1/audio/speech", json.dumps(body).encode(), "application/json"))


@FUZZ
@given(raw=raw_bodies, ctype=content_types)
def test_speech_raw_bodies_and_content_types(server: LiveServer, raw: bytes, ctype: str) -> None:
    for path in ("/v1/audio/speech", "/speak", "/config", "/webrtc/offer"):
        r = post(server, path, raw, ctype)
        check(r)
        if ctype and "json" not in ctype.split(";")[0]:
            assert r.status_code in (403, 415), (path, ctype, r.status_code)


@FUZZ
@given(body=body_for(["text", "voice"]))
def test_legacy_speak_json_shapes(server: LiveServer, body: dict) -> None:
    check(post(server, "/speak", json.dumps(body).encode(), "application/json"))


CONFIG_KEYS = ["playback_buffer_ms", "buffer_min_ms", "buffer_max_ms", "tts_backend",
               "fallback_backend", "parallel_streams", "queue_max", "chunk_lock",
               "first_segment_chars", "stall_timeout_ms", "default_voice", "outputs_dir",
               "piper_voices_dir", "models_dir", "api_key", "snac_kept_slice",
               "orpheus_extra_body", "vad_aggressiveness", "backends"]


@FUZZ
@given(body=body_for(CONFIG_KEYS))
def test_config_json_shapes(server: LiveServer, body: dict) -> None:
    r = post(server, "/config", json.dumps(body).encode(), "application/json")
    check(r)
    # Whatever was accepted, put the settings back so later examples test the same server.
    post(server, "/config", json.dumps(BASELINE).encode(), "application/json")


BASELINE = {"tts_backend": "espeak", "backends": "piper,espeak,synthetic,snac_llamacpp",
            "fallback_backend": "espeak", "parallel_streams": 4, "queue_max": 16,
            "playback_buffer_ms": 300, "buffer_min_ms": 200, "buffer_max_ms": 500,
            "chunk_lock": None, "first_segment_chars": 48, "stall_timeout_ms": 4000,
            "default_voice": None}

WS_TYPES = ["session.update", "input_text.append", "input_text.flush", "input_text.done",
            "response.cancel", "playback.report", "nope", ""]


@FUZZ
@given(messages=st.lists(st.one_of(
    st.builds(lambda t, rest: {**rest, "type": t}, st.sampled_from(WS_TYPES),
              st.dictionaries(st.sampled_from(["text", "session", "played_ms", "buffer_ms",
                                               "response_id", "voice", "x"]), json_values,
                              max_size=3)),
    json_values), min_size=1, max_size=6))
def test_websocket_messages(server: LiveServer, messages: list) -> None:
    with connect(server.ws_url + "/v1/audio/speech/ws", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "session.created"
        for m in messages:
            ws.send(json.dumps(m))
        ws.send(json.dumps({"type": "response.cancel"}))
        ws.send(json.dumps({"type": "input_text.append", "text": "ping"}))
        ws.send(json.dumps({"type": "response.cancel"}))
        # The connection is still open and answering: drain until quiet.
        while True:
            try:
                msg = ws.recv(timeout=0.3)
            except TimeoutError:
                break
            if isinstance(msg, str):
                ev = json.loads(msg)
                assert ev["type"] != "error" or ev.get("code") and ev.get("message"), ev


def test_the_server_still_speaks_normally_afterwards(server: LiveServer,
                                                     tmp_path: Path) -> None:
    assert server.alive()
    r = httpx.post(server.url + "/v1/audio/speech", json={"input": "Still fine, thank you."},
                   timeout=30)
    assert r.status_code == 200 and len(r.content) > 48_000
