"""Property tests: whatever JSON a client sends to the ElevenLabs routes and sockets, the answer
is audio or a 4xx / error message naming what is wrong, never a 500, and the server lives on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

scalars = st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(
    allow_nan=False) | st.text(max_size=30)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
FIELDS = ["text", "model_id", "voice_settings", "language_code", "seed", "previous_text",
          "apply_text_normalization", "output_format"]
bodies = st.dictionaries(st.sampled_from(FIELDS), values, max_size=4) | values
voice_settings = st.dictionaries(st.sampled_from(["speed", "stability", "style",
                                                  "use_speaker_boost"]), values, max_size=3)
WS_FIELDS = ["text", "flush", "try_trigger_generation", "voice_settings", "generation_config",
             "context_id", "close_context", "close_socket", "xi_api_key", "immediate"]
ws_messages = st.dictionaries(st.sampled_from(WS_FIELDS), values | st.just(" "), max_size=4)
queries = st.dictionaries(st.sampled_from(["output_format", "optimize_streaming_latency",
                                           "enable_logging", "inactivity_timeout"]),
                          st.text(max_size=12), max_size=2)

ROUTES = ["", "/stream", "/with-timestamps", "/stream/with-timestamps"]
FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


async def server(serve, cache: dict[str, Any]):
    if "srv" not in cache:
        cache["srv"] = await serve(tts_backend="synthetic", max_input_chars=2000)
    return cache["srv"]


@pytest.fixture
def cache() -> dict[str, Any]:
    """One server per test, shared by its examples (hypothesis keeps the fixture)."""
    return {}


@FUZZ
@given(body=bodies, vs=voice_settings, route=st.sampled_from(ROUTES), query=queries)
async def test_http_routes_never_500(serve, cache, body: Any, vs: dict, route: str,
                                     query: dict[str, str]) -> None:
    srv = await server(serve, cache)
    if isinstance(body, dict) and vs:
        body = {**body, "voice_settings": vs}
    async with srv.http.post(f"{srv.url}/v1/text-to-speech/sine{route}", params=query,
                             data=json.dumps(body),
                             headers={"Content-Type": "application/json"}) as r:
        data = await r.read()
        assert r.status in (200, 422), (body, query, r.status, data[:300])
        if r.status == 422:
            loc = json.loads(data)["detail"][0]["loc"]
            assert loc[0] in ("body", "query")


@FUZZ
@given(msgs=st.lists(ws_messages, min_size=1, max_size=4),
       kind=st.sampled_from(["stream-input", "multi-stream-input"]))
async def test_socket_messages_never_break_the_server(serve, cache, msgs: list[dict], kind: str) -> None:
    srv = await server(serve, cache)
    url = f"{srv.url.replace('http', 'ws')}/v1/text-to-speech/sine/{kind}?output_format=pcm_16000"
    async with srv.http.ws_connect(url) as ws:
        try:
            for m in msgs:
                await ws.send_str(json.dumps(m))
            await ws.send_str(json.dumps({"close_socket": True} if kind.startswith("multi")
                                         else {"text": ""}))
        except ConnectionError:
            pass
        while True:
            msg = await ws.receive(timeout=20)
            if msg.type.name != "TEXT":
                break
            data = json.loads(msg.data)
            assert "audio" in data or "isFinal" in data or data.get("message"), data
        assert ws.close_code in (1000, 1008), (msgs, ws.close_code)
    async with srv.http.get(f"{srv.url}/healthz") as r:  # still serving
        assert r.status == 200

