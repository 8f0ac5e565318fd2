"""`scripts/bench.py --quick` end to end: the harness runs, and bench.json holds real figures.

No thresholds here (speed is the benchmark's own report); this only checks that every piece of
the transports part still measures something: each ready backend over each transport, the raw
engine, the adapter alone, the peers that are installed, the concurrency levels, the plots and
the markdown, and that the one targets table judged them.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TRANSPORTS = {"http", "ws", "webrtc"}


def _run_quick(out: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "bench.py"), "--quick", "--out", str(out)],
        env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        stdout, _ = proc.communicate(timeout=270)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the bench ends the servers it started on SIGTERM
        try:
            stdout, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, _ = proc.communicate()
        raise AssertionError(f"bench --quick did not finish in 270 s:\n{stdout[-3000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout)


def _finite(doc: Any, path: str = "") -> list[str]:
    """Paths of every NaN or infinite number in the document."""
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in _finite(v, f"{path}.{k}")]
    if isinstance(doc, list):
        return [p for i, v in enumerate(doc) for p in _finite(v, f"{path}[{i}]")]
    if isinstance(doc, float) and not math.isfinite(doc):
        return [path]
    return []


def _positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _check_stream_figures(f: dict[str, Any]) -> None:
    name = f["subject"]
    assert f["errors"] == 0, (name, f.get("first_error"))
    for key in ("first_audio_ms", "first_audio_short_ms"):
        assert f[key]["n"] >= 1, (name, key)
        assert _positive(f[key]["p50"]) and _positive(f[key]["p95"]), (name, key, f[key])
        assert f[key]["p50"] <= f[key]["p95"], (name, key)
    assert _positive(f["audio_s"]) and _positive(f["rtf"]), (name, f)
    chunks = f["chunk_ms"]
    eps = 1e-6  # the mean of equal floats can round below their minimum
    assert _positive(chunks["min"]), name
    assert chunks["min"] - eps <= chunks["avg"] <= chunks["max"] + eps, (name, chunks)
    assert _count(f["underflows"]) or (f["transport"] == "webrtc" and f["underflows"] is None)
    # CPU is read in clock ticks; the bench repeats a whole stream until its runs cost at least
    # five ticks (bench/phases.py), so zero here is a broken measurement, not a fast engine.
    assert _positive(f["cpu_s"]) and _positive(f["cpu_s_per_audio_s"]), (name, f["cpu_s"])


def test_quick_benchmark_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    done = _run_quick(out)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "how we compare" in done.stdout

    top = json.loads((out / "bench.json").read_text())
    assert _finite(top) == [], _finite(top)
    assert top["quick"] is True
    assert top["command"].startswith("python scripts/bench.py --quick")
    assert top["machine"]["cores"] >= 1 and top["machine"]["cpu"]
    assert "load average" in top["load"]["before"] and "load average" in top["load"]["after"]
    assert list(top["parts"]) == ["transports"]  # --quick alone: the transports part
    doc = top["parts"]["transports"]
    assert "error" not in doc, doc.get("error")
    assert doc["server"]["started_by_bench"] and doc["server"]["config"]["parallel_streams"] == 2

    backends = {b["backend"]: b for b in doc["backends"]}
    assert {"piper", "espeak", "kokoro"} <= set(backends)  # all ready on a fresh machine
    assert "synthetic" not in backends  # only when asked for
    for b in backends.values():
        assert TRANSPORTS <= set(b["transports"]), b["transports"].keys()
        for transport, f in b["transports"].items():
            assert f["transport"] == transport and f["backend"] == b["backend"]
            _check_stream_figures(f)
            assert _positive(f["peak_rss_mb"]), f  # the server's own /proc
            assert _count(f["server_underflows"]), f
        raw = b["raw"]
        _check_stream_figures(raw)
        assert _positive(raw["first_segment_ms"]["p50"])
        # the like-for-like baseline of the server's overhead: its adapter alone, first chunk
        adapter = b["adapter"]
        assert adapter["errors"] == 0, adapter.get("first_error")
        assert _positive(adapter["first_segment_ms"]["p50"]), adapter
        assert adapter["first_segment_ms"]["p50"] <= raw["first_segment_ms"]["p50"] * 5, adapter
        assert set(b["overhead_ms"]) == {"sentence", "short"}
        assert all(isinstance(v, float) for v in b["overhead_ms"].values()), b["overhead_ms"]

    levels = sorted({r["streams"] for r in doc["concurrency"]})
    assert levels == [1, 2]
    for r in doc["concurrency"]:
        assert r["errors"] == 0, r
        assert _positive(r["first_audio_ms"]["p50"]), r
        assert r["first_audio_ms"]["n"] == r["streams"] - r["rejected_429"], r
        assert _positive(r["slowest_rtf"]) and _positive(r["aggregate_rtf"]), r
        assert _count(r["underflows"]) and _count(r["rejected_429"]), r

    peers = {p["name"] for p in doc["peers"]}
    if importlib.util.find_spec("flask") is not None:
        assert "peer/piper.http_server/http" in peers
    if importlib.util.find_spec("wyoming_piper") is not None:
        assert "peer/wyoming-piper/wyoming" in peers
    for p in doc["peers"]:
        _check_stream_figures(p)
        assert p["version"] and p["command"].startswith("python -m ")
        assert [r["streams"] for r in doc["concurrency"] if r["subject"] == p["name"]] == [1, 2]

    targets = top["targets"]
    assert targets and all(t["part"] == "transports" for t in targets)  # only parts that ran
    assert all(t["met"] in (True, False, None) and t["op"] in ("<=", ">=") for t in targets)
    measured = {t["target"] for t in targets if t["met"] is not None}
    assert any("server overhead" in t for t in measured), measured
    assert any("low_latency" in t for t in measured), measured
    assert set(top["capacity"]) == {r["subject"] for r in doc["concurrency"]}

    assert set(top["plots"]) >= {"first_audio_vs_concurrency.png", "first_audio_peers.png"}
    for name in top["plots"]:
        png = (out / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, name
    md = (out / "performance.md").read_text()
    assert "### How we compare" in md and "first_audio_vs_concurrency.png" in md
