"""Metrics: every family readable from the start, labels bounded, nothing stale."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families


async def scrape(srv) -> dict[str, list]:  # noqa: ANN001
    async with srv.http.get(srv.url + "/metrics") as r:
        assert r.status == 200
        text = await r.text()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(samples: list, name: str, **labels: str) -> float:
    for s in samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError((name, labels))


async def test_a_fresh_server_exports_zero_for_every_enabled_backend(serve) -> None:
    srv = await serve(tts_backend="synthetic", backends="synthetic,espeak",
                      fallback_backend="espeak")
    fams = await scrape(srv)
    for backend in ("synthetic", "espeak"):
        assert value(fams["tts_underflow_count"], "tts_underflow_count",
                     backend=backend) == 0
        assert value(fams["tts_active_streams"], "tts_active_streams", backend=backend) == 0
        assert value(fams["tts_requests"], "tts_requests_total", backend=backend,
                     status="completed") == 0
        assert value(fams["tts_ttft_ms"], "tts_ttft_ms_count", backend=backend,
                     transport="http") == 0
        assert value(fams["tts_streams_by_state"], "tts_streams_by_state", backend=backend,
                     state="STEADY") == 0
    assert value(fams["tts_backend_failover"], "tts_backend_failover_total",
                 from_backend="synthetic", to_backend="espeak") == 0
    assert value(fams["tts_timeouts"], "tts_timeouts_total", kind="write") == 0
    assert value(fams["tts_refused"], "tts_refused_total", reason="webrtc_peers") == 0


async def test_no_label_names_a_stream(serve) -> None:
    srv = await serve(tts_backend="synthetic", synthetic_rtf=20.0)
    for i in range(3):
        async with srv.http.post(srv.url + "/v1/audio/speech",
                                 json={"input": f"Stream number {i} speaks a little."}) as r:
            assert r.status == 200
            await r.read()
    fams = await scrape(srv)
    allowed = {"backend", "transport", "state", "status", "kind", "reason", "le",
               "from_backend", "to_backend",
               "upstream",  # a configured upstream address (snac_llamacpp's SNAC_URL here)
               "device"}  # a decoder's device (cpu, cuda)
    for samples in fams.values():
        for s in samples:
            assert set(s.labels) <= allowed, s
            assert not any(re.fullmatch(r"[0-9a-f]{16}", v) for v in s.labels.values()), s
    assert value(fams["tts_requests"], "tts_requests_total", backend="synthetic",
                 status="completed") == 3
    assert value(fams["tts_buffer_ms"], "tts_buffer_ms_count", backend="synthetic",
                 transport="http") > 0


async def test_states_follow_running_streams_and_leave_nothing_stale(serve) -> None:
    srv = await serve(tts_backend="synthetic", synthetic_rtf=2.0)
    async with srv.http.post(srv.url + "/v1/audio/speech",
                             json={"input": "A sentence long enough to be running. " * 4}) as r:
        await r.content.read(4800)
        fams = await scrape(srv)
        running = sum(s.value for s in fams["tts_streams_by_state"]
                      if s.labels["backend"] == "synthetic")
        assert running == 1
        await r.read()
    fams = await scrape(srv)
    assert sum(s.value for s in fams["tts_streams_by_state"]) == 0


def test_upstream_gauges_follow_the_pools_and_hide_credentials() -> None:
    from server.metrics import Metrics

    m = Metrics()
    pools = [("openai_tts", {"address": "http://user:pw@a:8880/v1", "state": "up",
                             "outstanding": 2, "failures": 0}),
             ("openai_tts", {"address": "http://b:8880/v1", "state": "down",
                             "outstanding": 0, "failures": 3})]
    m.track_upstreams(lambda: list(pools))
    text = m.render().decode()
    assert 'tts_upstream_up{backend="openai_tts",upstream="http://a:8880/v1"} 1.0' in text
    assert 'tts_upstream_up{backend="openai_tts",upstream="http://b:8880/v1"} 0.0' in text
    assert 'tts_upstream_streams{backend="openai_tts",upstream="http://a:8880/v1"} 2.0' in text
    assert 'tts_upstream_failures{backend="openai_tts",upstream="http://b:8880/v1"} 3.0' in text
    assert "pw" not in text
    pools.pop()  # removed from the settings: its series goes too
    assert "http://b:8880" not in m.render().decode()
