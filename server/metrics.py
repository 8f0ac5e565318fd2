"""Prometheus metrics (names are part of the contract), one registry per app."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

MS_BUCKETS = (5, 10, 20, 40, 60, 80, 100, 120, 150, 200, 300, 500, 800, 1200, 2000, 5000)
RTF_BUCKETS = (0.5, 0.8, 1.0, 1.2, 1.5, 2, 3, 5, 10, 20, 50, 100)


class Metrics:
    """All metric families Morpheus exports; labelled by backend (and stream where per-stream)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.ttft_ms = Histogram("tts_ttft_ms", "Time to first audio (ms)",
                                 ["backend", "transport"], buckets=MS_BUCKETS, registry=r)
        self.chunk_ms = Histogram("tts_chunk_ms", "Wall time to make one chunk (ms)",
                                  ["backend"], buckets=MS_BUCKETS, registry=r)
        self.stream_rtf = Histogram("tts_stream_rtf", "Audio seconds per wall second, per stream",
                                    ["backend"], buckets=RTF_BUCKETS, registry=r)
        self.underflow = Counter("tts_underflow_count", "Times a listener ran out of audio",
                                 ["backend"], registry=r)
        self.failover = Counter("tts_backend_failover_total", "Streams moved to another backend",
                                ["from_backend", "to_backend"], registry=r)
        self.active = Gauge("tts_active_streams", "Streams running", ["backend"], registry=r)
        self.queued = Gauge("tts_queued_streams", "Streams waiting for a slot", registry=r)
        self.buffer_ms = Gauge("tts_buffer_ms", "Audio ahead of playback (ms)",
                               ["backend", "stream"], registry=r)
        self.chunk_size = Gauge("tts_chunk_size", "Current chunk size (tokens or chars)",
                                ["backend", "stream"], registry=r)
        self.state = Gauge("tts_stream_state", "Rate-control state (1 = current)",
                           ["backend", "stream", "state"], registry=r)
        self.barge_in = Counter("tts_barge_in_total", "Barge-ins (speech over playback)",
                                ["backend"], registry=r)
        self.requests = Counter("tts_requests_total", "Streams by backend and final status",
                                ["backend", "status"], registry=r)
        self.rejected = Counter("tts_rejected_total", "Requests refused with 429", registry=r)

    def watch_decoders(self, adapters: Callable[[], Iterable[Any]]) -> None:
        """Export the decoder workers of `adapters()` (see DecoderCollector) at each scrape."""
        self.registry.register(DecoderCollector(adapters))

    def forget_stream(self, backend: str, stream: str, states: list[str]) -> None:
        for fam in (self.buffer_ms, self.chunk_size):
            try:
                fam.remove(backend, stream)
            except KeyError:
                pass
        for s in states:
            try:
                self.state.remove(backend, stream, s)
            except KeyError:
                pass

    def render(self) -> bytes:
        return generate_latest(self.registry)


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
