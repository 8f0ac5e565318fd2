"""Prometheus metrics (names are part of the contract), one registry per app.

Labels are bounded: backend, transport, state, and small fixed sets (timeout kinds, refusal
reasons). Per-stream detail lives in the /ws/perf snapshot, never in a label. Every family
has its samples from the start (0 for each enabled backend), so a dashboard or an alert like
`tts_underflow_count == 0` can read it before anything happened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

MS_BUCKETS = (5, 10, 20, 40, 60, 80, 100, 120, 150, 200, 300, 500, 800, 1200, 2000, 5000)
RTF_BUCKETS = (0.5, 0.8, 1.0, 1.2, 1.5, 2, 3, 5, 10, 20, 50, 100)
SIZE_BUCKETS = (8, 16, 28, 48, 64, 100, 150, 200, 300, 400, 600)
TRANSPORTS = ("http", "ws", "webrtc", "wyoming", "cli")
STATUSES = ("completed", "failed", "cancelled")
STATES = ("INIT", "WARMUP", "FILL", "STEADY", "UNDERFLOW", "RECOVER")
TIMEOUT_KINDS = ("input_idle", "write", "webrtc_idle")
REFUSAL_REASONS = ("ws_connections", "webrtc_peers", "draining")


class Metrics:
    """All metric families Morpheus exports."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.ttft_ms = Histogram("tts_ttft_ms", "Time to first audio (ms)",
                                 ["backend", "transport"], buckets=MS_BUCKETS, registry=r)
        self.chunk_ms = Histogram("tts_chunk_ms", "Wall time to make one chunk (ms)",
                                  ["backend"], buckets=MS_BUCKETS, registry=r)
        self.stream_rtf = Histogram("tts_stream_rtf", "Audio seconds per wall second, per stream",
                                    ["backend"], buckets=RTF_BUCKETS, registry=r)
        # A gauge that only grows, not a Counter: a Counter is exported as ..._total, and the
        # contract (and checks like `tts_underflow_count == 0`) use this exact name.
        self.underflow = Gauge("tts_underflow_count", "Times a listener ran out of audio "
                               "(only grows)", ["backend"], registry=r)
        self.failover = Counter("tts_backend_failover_total", "Streams moved to another backend",
                                ["from_backend", "to_backend"], registry=r)
        self.active = Gauge("tts_active_streams", "Streams running", ["backend"], registry=r)
        self.queued = Gauge("tts_queued_streams", "Streams waiting for a slot", registry=r)
        self.buffer_ms = Histogram("tts_buffer_ms", "Audio ahead of playback when the next "
                                   "chunk is sized (ms)", ["backend", "transport"],
                                   buckets=MS_BUCKETS, registry=r)
        self.chunk_size = Histogram("tts_chunk_size", "Chunk sizes asked of the engine "
                                    "(tokens or characters)", ["backend"],
                                    buckets=SIZE_BUCKETS, registry=r)
        self.state = Gauge("tts_streams_by_state", "Running streams per rate-control state",
                           ["backend", "state"], registry=r)
        self.barge_in = Counter("tts_barge_in_total", "Barge-ins (speech over playback)",
                                ["backend"], registry=r)
        self.requests = Counter("tts_requests_total", "Streams by backend and final status",
                                ["backend", "status"], registry=r)
        self.rejected = Counter("tts_rejected_total", "Requests refused with 429", registry=r)
        self.timeouts = Counter("tts_timeouts_total", "Streams and connections ended by an "
                                "idle or write timeout", ["kind"], registry=r)
        self.refused = Counter("tts_refused_total", "Connections refused by a cap or while "
                               "draining", ["reason"], registry=r)
        # Upstream pools of network backends: labels are the configured addresses (bounded).
        self.upstream_up = Gauge("tts_upstream_up", "1 while an upstream takes streams, 0 while "
                                 "it rests after a failure", ["backend", "upstream"], registry=r)
        self.upstream_streams = Gauge("tts_upstream_streams", "Streams in flight per upstream",
                                      ["backend", "upstream"], registry=r)
        self.upstream_failures = Gauge("tts_upstream_failures", "Consecutive failures per "
                                       "upstream", ["backend", "upstream"], registry=r)
        for kind in TIMEOUT_KINDS:
            self.timeouts.labels(kind)
        for reason in REFUSAL_REASONS:
            self.refused.labels(reason)
        self._states: Callable[[], Iterable[tuple[str, str]]] = lambda: ()
        self._upstreams: Callable[[], Iterable[tuple[str, dict[str, Any]]]] = lambda: ()
        self._backends: list[str] = []

    def init_backends(self, backends: Iterable[str], fallback: str | None) -> None:
        """Zero samples for every enabled backend, so each family reads 0 before any traffic."""
        self._backends = list(backends)
        for b in self._backends:
            for t in TRANSPORTS:
                self.ttft_ms.labels(b, t)
                self.buffer_ms.labels(b, t)
            for fam in (self.chunk_ms, self.stream_rtf, self.underflow, self.barge_in,
                        self.chunk_size):
                fam.labels(b)
            self.active.labels(b)
            for status in STATUSES:
                self.requests.labels(b, status)
            if fallback and fallback != b:
                self.failover.labels(b, fallback)

    def track_states(self, states: Callable[[], Iterable[tuple[str, str]]]) -> None:
        """Where to read (backend, state) of every running stream at scrape time."""
        self._states = states

    def track_upstreams(self, upstreams: Callable[[], Iterable[tuple[str, dict[str, Any]]]],
                        ) -> None:
        """Where to read (backend, upstream snapshot) of every enabled backend at scrape time."""
        self._upstreams = upstreams

    def _refresh_upstreams(self) -> None:
        for fam in (self.upstream_up, self.upstream_streams, self.upstream_failures):
            fam.clear()  # an upstream removed from the settings leaves no stale series
        for backend, up in self._upstreams():
            address = _without_userinfo(str(up.get("address", "")))
            self.upstream_up.labels(backend, address).set(1 if up.get("state") == "up" else 0)
            self.upstream_streams.labels(backend, address).set(up.get("outstanding", 0))
            self.upstream_failures.labels(backend, address).set(up.get("failures", 0))

    def _refresh_states(self) -> None:
        counts = {(b, s): 0 for b in self._backends for s in STATES}
        for key in self._states():
            counts[key] = counts.get(key, 0) + 1
        self.state.clear()  # a stream that ended or moved backend leaves no stale series
        for (backend, state), n in counts.items():
            self.state.labels(backend, state).set(n)

    def watch_decoders(self, adapters: Callable[[], Iterable[Any]]) -> None:
        """Export the decoder workers of `adapters()` (see DecoderCollector) at each scrape."""
        self.registry.register(DecoderCollector(adapters))

    def render(self) -> bytes:
        self._refresh_states()
        self._refresh_upstreams()
        return generate_latest(self.registry)


def _without_userinfo(address: str) -> str:
    """An upstream URL as a label: credentials in it (user:pass@) never reach /metrics."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        return address.rpartition("@")[2]
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host.rpartition('@')[2]}{slash}{path}"


# ------------------------------------------------ shared decoder workers (SNAC; issue 12)
# Read at scrape time from every live adapter that has `decoder_stats()` (snac_llamacpp:
# adapters/snac_worker.py DecoderStats). Labels: backend and device only.

_DECODER_COUNTERS = (
    ("tts_snac_decode_seconds", "decode_s", "Time the SNAC decoder spent in the model (s)"),
    ("tts_snac_frames_decoded", "frames_decoded", "Frames decoded, window context included"),
    ("tts_snac_frames_new", "frames_new", "Frames of new audio decoded (the rest is context)"),
    ("tts_snac_windows", "windows", "Windows decoded"),
    ("tts_snac_batches", "batches", "Model calls (windows per call = batch size)"),
    ("tts_snac_windows_dropped", "dropped", "Windows of cancelled streams, never decoded"),
)
_DECODER_GAUGES = (
    ("tts_snac_windows_waiting", "waiting", "Windows queued for the decoder now"),
    ("tts_snac_decode_ms_per_frame", "recent_ms_per_frame", "Recent decode time per frame (ms)"),
    ("tts_snac_frames_per_window", "recent_frames_per_window", "Recent frames per window"),
    ("tts_snac_batch_size", "recent_batch_size", "Recent windows per model call"),
)


class DecoderCollector:
    """Prometheus families for the adapters' shared decoder workers."""

    def __init__(self, adapters: Callable[[], Iterable[Any]]) -> None:
        self._adapters = adapters

    def describe(self) -> list[Metric]:
        return []  # families appear once a decoder is loaded

    def collect(self) -> Iterator[Metric]:
        rows = []
        for adapter in self._adapters():
            stats = getattr(adapter, "decoder_stats", None)
            snapshot = stats() if callable(stats) else None
            if snapshot is not None:
                rows.append(([adapter.name, snapshot.device], snapshot))
        if not rows:
            return
        for name, attr, doc in _DECODER_COUNTERS:
            counter = CounterMetricFamily(name, doc, labels=["backend", "device"])
            for labels, snapshot in rows:
                counter.add_metric(labels, float(getattr(snapshot, attr)))
            yield counter
        for name, attr, doc in _DECODER_GAUGES:
            gauge = GaugeMetricFamily(name, doc, labels=["backend", "device"])
            for labels, snapshot in rows:
                gauge.add_metric(labels, float(getattr(snapshot, attr)))
            yield gauge
