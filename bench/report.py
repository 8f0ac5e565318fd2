"""bench.json -> the stdout table (every figure with its ratio to its baseline) and the README's
Performance tables (markdown).

Baselines: per-stream figures against the raw engine (same text, voice and threads, in the
bench process); concurrency figures against Piper's own HTTP server at the same stream count
(the peer a Piper user would run instead), where it was measured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.report_parts import num
from bench.targets import PROMPT_START_MS

PEER_BASELINE = "peer/piper.http_server/http"

PACED = {"ws", "webrtc"}  # real time by design: RTF, chunk and jitter have no engine ratio

# (label, getter, which transports get a ratio to the raw engine: "all", "unpaced" (real-time
# transports are paced by design) or "none" (counts: a ratio of zeros says nothing))
ROWS: list[tuple[str, Callable[[dict[str, Any]], float | None], str]] = [
    ("first audio p50, ~120-char sentences (ms)", lambda f: _g(f, "first_audio_ms", "p50"), "all"),
    ("first audio p95, ~120-char sentences (ms)", lambda f: _g(f, "first_audio_ms", "p95"), "all"),
    ("first audio p50, smart-home answers (ms)",
     lambda f: _g(f, "first_audio_short_ms", "p50"), "all"),
    ("first audio p95, smart-home answers (ms)",
     lambda f: _g(f, "first_audio_short_ms", "p95"), "all"),
    ("RTF, request to last audio", lambda f: f.get("rtf"), "unpaced"),
    ("RTF after the first second", lambda f: f.get("rtf_after_1s"), "unpaced"),
    ("chunk avg (ms of audio)", lambda f: _g(f, "chunk_ms", "avg"), "unpaced"),
    ("chunk min (ms of audio)", lambda f: _g(f, "chunk_ms", "min"), "unpaced"),
    ("chunk max (ms of audio)", lambda f: _g(f, "chunk_ms", "max"), "unpaced"),
    ("delivery jitter, RFC 3550 J (ms)", lambda f: f.get("jitter_ms"), "unpaced"),
    ("underflows (real-time client)", lambda f: f.get("underflows"), "none"),
    ("underflows (server count)", lambda f: f.get("server_underflows"), "none"),
    ("peak RSS of the serving process (MB)", lambda f: f.get("peak_rss_mb"), "all"),
    ("CPU per stream (% of one core)", lambda f: f.get("cpu_pct_per_stream"), "unpaced"),
    ("CPU seconds per audio second", lambda f: f.get("cpu_s_per_audio_s"), "all"),
]

SWEEP_COLS: list[tuple[str, Callable[[dict[str, Any]], float | None]]] = [
    ("first p50 ms", lambda r: _g(r, "first_audio_ms", "p50")),
    ("first p95 ms", lambda r: _g(r, "first_audio_ms", "p95")),
    ("slowest RTF", lambda r: r.get("slowest_rtf")),
    ("aggregate RTF", lambda r: r.get("aggregate_rtf")),
    ("underflows", lambda r: r.get("underflows")),
    ("429s", lambda r: r.get("rejected_429")),
    ("CPU %/stream", lambda r: r.get("cpu_pct_per_stream")),
]


def _g(d: dict[str, Any], key: str, sub: str) -> float | None:
    v = d.get(key)
    return v.get(sub) if isinstance(v, dict) else None


def ratio(v: float | None, base: float | None) -> str:
    if v is None or base is None or base == 0:
        return ""
    return f"{v / base:.2f}x"


def compares(rule: str, transport: str) -> bool:
    return rule == "all" or (rule == "unpaced" and transport not in PACED)


def cell(v: float | None, base: float | None) -> str:
    r = ratio(v, base)
    return f"{num(v)} ({r})" if r else num(v)


# --- stdout ------------------------------------------------------------------------------


def transports_view(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The run's header and the transports part's figures in one mapping (what the tables and
    plots of that part read), or None when the part did not run or failed."""
    part = (doc.get("parts") or {}).get("transports")
    if not part or "error" in part:
        return None
    return {**{k: v for k, v in doc.items() if k != "parts"}, **part}


def flat(figures: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, leaf) of a part's figures: numbers, strings and booleans; lists of
    numbers are left out (series, for plots)."""
    if isinstance(figures, dict):
        return [kv for k, v in figures.items() for kv in flat(v, f"{prefix}{k}.")]
    if isinstance(figures, list):
        if all(isinstance(x, (int, float)) for x in figures):
            return []
        return [kv for i, v in enumerate(figures) for kv in flat(v, f"{prefix}{i}.")]
    return [(prefix[:-1], figures)]


def print_report(doc: dict[str, Any]) -> None:
    m = doc["machine"]
    print(f"\nMorpheus benchmark, {doc['date']}: {m['cpu']}, {m['cores']} cores, "
          f"{m['memory_gb']} GB, GPU: {m['gpu'] or 'none'}")
    print(f"command: {doc['command']}")
    print(f"load before: {doc['load']['before']}")
    print(f"load after:  {doc['load'].get('after')}")
    view = transports_view(doc)
    if view is not None:
        _print_transports(view)
    for name, figures in doc.get("parts", {}).items():
        if name in ("transports", "soak") and "error" not in figures:
            continue
        print(f"\n== part: {name} ==")
        from bench.report_parts import RENDERERS

        if name in RENDERERS and "error" not in figures:
            print("\n".join(RENDERERS[name](figures, [], "")))
            continue
        for key, value in flat(figures):
            print(f"  {key:64s} {value if isinstance(value, str) else num(value)}")
    if "soak" in doc.get("parts", {}) and "error" not in doc["parts"]["soak"]:
        from bench.parts.soak.report import print_soak

        print_soak(doc["parts"]["soak"])
    _print_targets(doc)


def _print_transports(doc: dict[str, Any]) -> None:
    cfg = doc["server"]["config"]
    print(f"server: {doc['server']['url']} PARALLEL_STREAMS={cfg.get('parallel_streams')} "
          f"PLAYBACK_BUFFER_MS={cfg.get('playback_buffer_ms')}")
    for s in doc.get("skipped", []):
        print(f"skipped {s.get('backend') or s.get('peer')}: {s['reason']}")
    for b in doc["backends"]:
        _print_backend(b)
    _print_peers(doc)
    _print_sweep(doc)
    _print_capacity(doc)
    for b in doc["backends"]:
        for transport, n in b.get("narration", {}).items():
            print(f"\nnarration, {b['backend']} over {transport}: {num(n['audio_s'])} s of audio"
                  f" in {num(n['wall_s'])} s, first audio {num(n['first_audio_ms'])} ms, "
                  f"underflows {n['underflows']} (server {num(n['server_underflows'])}), "
                  f"lowest buffer while playing {num(n['min_buffer_ms'])} ms")


def _print_backend(b: dict[str, Any]) -> None:
    transports = b["transports"]
    raw = b.get("raw") or {}
    base = f"raw engine {b['raw_engine']['name']}" if b.get("raw_engine") else "no raw baseline"
    print(f"\n== {b['backend']} ==  (ratio: to the {base})")
    cols = list(transports) + (["raw"] if raw else [])
    print(f"{'':44s}" + "".join(f"{c:>20s}" for c in cols))
    for label, get, compare in ROWS:
        base_v = get(raw) if raw else None
        cells = [cell(get(f), base_v if compares(compare, t) else None)
                 for t, f in transports.items()]
        if raw:
            cells.append(num(base_v))
        if all(c == "-" for c in cells):
            continue
        print(f"{label:44s}" + "".join(f"{c:>20s}" for c in cells))
    if raw.get("first_segment_ms"):
        seg = _g(raw, "first_segment_ms", "p50")
        print(f"{'raw engine, the whole first segment, p50 (ms)':44s}{num(seg):>20s}")
    adapter = b.get("adapter") or {}
    if adapter.get("first_segment_ms"):
        seg = _g(adapter, "first_segment_ms", "p50")
        over = (b.get("overhead_ms") or {}).get("sentence")
        print(f"{'adapter alone, first chunk of it, p50 (ms)':44s}{num(seg):>20s}"
              f"   server overhead over it (HTTP): {num(over)} ms")
    for name, f in transports.items():
        if f.get("errors"):
            print(f"  {name}: {f['errors']} errors, first: {f.get('first_error')}")


def _print_peers(doc: dict[str, Any]) -> None:
    peers = doc.get("peers", [])
    if not peers:
        return
    piper = next((b for b in doc["backends"] if b["backend"] == "piper"), None)
    if piper is None:
        return
    http = piper["transports"].get("http", {})
    print("\n== how we compare (same voice, same run; ratio: Morpheus HTTP / peer) ==")
    print(f"{'':44s}{'Morpheus HTTP':>16s}" + "".join(f"{p['name'].split('/')[1]:>26s}"
                                                        for p in peers))
    for label, get, compare in ROWS:
        v = get(http)
        cells = [f"{num(get(p))} ({ratio(v, get(p)) if compare != 'none' else ''})"
                 .replace(" ()", "") for p in peers]
        if v is None and all(get(p) is None for p in peers):
            continue
        print(f"{label:44s}{num(v):>16s}" + "".join(f"{c:>26s}" for c in cells))


def _print_sweep(doc: dict[str, Any]) -> None:
    rows = doc.get("concurrency", [])
    if not rows:
        return
    base = {r["streams"]: r for r in rows if r["subject"] == PEER_BASELINE}
    print("\n== concurrency (all streams at once; ratio: to Piper's HTTP server, same N) ==")
    print(f"{'subject':34s}{'N':>4s}" + "".join(f"{c:>18s}" for c, _ in SWEEP_COLS))
    for r in rows:
        b = base.get(r["streams"]) if r["kind"] == "morpheus" and r["backend"] == "piper" else None
        cells = [cell(get(r), get(b) if b else None) for _, get in SWEEP_COLS]
        print(f"{r['subject']:34s}{r['streams']:>4d}" + "".join(f"{c:>18s}" for c in cells))
        if r.get("first_error"):
            print(f"  errors: {r['errors']}, first: {r['first_error']}")


def _print_capacity(doc: dict[str, Any]) -> None:
    if doc.get("capacity"):
        print("\n== streams held: largest N of the sweep with no underflow, 429 or error and "
              f"first audio p95 <= {PROMPT_START_MS:.0f} ms ==")
        for subject, n in doc["capacity"].items():
            print(f"{subject:44s}{n if n is not None else 'none':>8}")


def _print_targets(doc: dict[str, Any]) -> None:
    if not doc.get("targets"):
        return
    print("\n== targets ==")
    part = None
    for t in doc["targets"]:
        if t["part"] != part:
            part = t["part"]
            print(f"[{part}]")
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        print(f"  {t['target']:96s}{num(t['value']):>10s}  {t['op']} {t['limit']:<6g} {verdict}")


# --- markdown (README) ---------------------------------------------------------------------


__all__ = ["PACED", "PEER_BASELINE", "ROWS", "SWEEP_COLS", "cell", "compares", "flat", "num",
           "print_report", "ratio", "transports_view"]
