"""bench.json -> docs/bench/performance.md (markdown tables, plots embedded).

`performance_md(doc, image_prefix)` is what `scripts/bench.py` writes to OUT/performance.md;
`scripts/bench.py --render OUT/bench.json --out docs/bench` re-renders it without measuring
again (the plots sit next to the page, so their links need no prefix). The transports part gets its comparison tables; every
other part a table of its figures; the soak its own section; all targets one table.
"""

from __future__ import annotations

from typing import Any

from bench.report import (
    PEER_BASELINE,
    ROWS,
    SWEEP_COLS,
    _g,
    compares,
    flat,
    num,
    ratio,
    transports_view,
)
from bench.targets import PROMPT_START_MS

TRANSPORT_NAMES = {"http": "HTTP", "ws": "WebSocket", "webrtc": "WebRTC", "wyoming": "Wyoming",
                   "in-process": "in process", "subprocess": "subprocess"}


def _who(f: dict[str, Any], doc: dict[str, Any]) -> str:
    kind, name, transport = f["subject"].split("/")
    if kind == "morpheus":
        return f"Morpheus, {name}, {TRANSPORT_NAMES.get(transport, transport)}"
    if kind == "raw":
        return f"raw {name} engine ({TRANSPORT_NAMES.get(transport, transport)})"
    peer: dict[str, Any] = next(
        (p for p in doc.get("peers", []) if p["subject"] == f["subject"]), {})
    return f"{name} {peer.get('version') or ''}".strip()


def _pair(d: dict[str, Any], key: str) -> str:
    p50, p95 = _g(d, key, "p50"), _g(d, key, "p95")
    return "-" if p50 is None else f"{num(p50)} / {num(p95)}"


def header(doc: dict[str, Any]) -> list[str]:
    m = doc["machine"]
    lines = [
        f"Measured by `{doc['command']}` on {doc['date']}: {m['cpu']}, {m['cores']} cores, "
        f"{m['memory_gb']} GB RAM, GPU: {m['gpu'] or 'none'}; {m['os']}, Python {m['python']}. "
        f"The run took {doc.get('duration_s', 0) / 60:.0f} minutes; parts: "
        f"{', '.join(doc.get('parts', {}))}.",
        "",
        f"Load (`uptime`) before: `{doc['load']['before']}`; after: `{doc['load'].get('after')}`.",
    ]
    view = transports_view(doc)
    if view is not None:
        cfg = view["server"]["config"]
        lines += [
            "",
            f"Server of the transports part: `PARALLEL_STREAMS={cfg.get('parallel_streams')}`, "
            f"`PLAYBACK_BUFFER_MS={num(cfg.get('playback_buffer_ms'))}`, "
            f"`FIRST_SEGMENT_CHARS={cfg.get('first_segment_chars')}`, everything else default. "
            "Every figure of the same table comes from the same run.",
        ]
        for s in view.get("skipped", []):
            lines += ["", f"Not measured: {s.get('backend') or s.get('peer')} ({s['reason']})."]
    return lines


def compare_table(doc: dict[str, Any]) -> list[str]:
    """Morpheus with the Piper voice beside the raw engine and the peers."""
    piper = next((b for b in doc["backends"] if b["backend"] == "piper"), None)
    if piper is None:
        return []
    rows = [*piper["transports"].values(), *([piper["raw"]] if piper.get("raw") else []),
            *doc.get("peers", [])]
    levels = sorted({r["streams"] for r in doc.get("concurrency", [])})
    shown = [n for n in levels if n in (1, 8, 16)] or levels[-1:]
    sweep = {(r["subject"], r["streams"]): r for r in doc.get("concurrency", [])}
    top = max(levels) if levels else None
    http = piper["transports"].get("http", {})
    head = (["", "first audio p50 / p95, ~120-char sentence (ms)", "smart-home answer p50 (ms)"]
            + [f"{n} stream{'s' if n > 1 else ''} at once: first audio p95 (ms)" for n in shown]
            + [f"{top} at once: aggregate RTF / underflows", "peak RSS (MB)"])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in rows:
        cells = [_who(f, doc), _pair(f, "first_audio_ms"), num(_g(f, "first_audio_short_ms",
                                                                   "p50"))]
        if f["kind"] == "peer":
            r = ratio(_g(http, "first_audio_ms", "p50"), _g(f, "first_audio_ms", "p50"))
            cells[1] += f" (Morpheus HTTP: {r})" if r else ""
        for n in shown:
            s = sweep.get((f["subject"], n))
            v = _g(s, "first_audio_ms", "p95") if s else None
            cells.append(num(v))
        s = sweep.get((f["subject"], top)) if top else None
        cells.append(f"{num(s.get('aggregate_rtf'))} / {s.get('underflows')}" if s else "-")
        cells.append(num(f.get("peak_rss_mb")))
        out.append("| " + " | ".join(cells) + " |")
    return out


def backend_table(doc: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Every per-stream figure of one backend, by transport, with its ratio to the raw engine."""
    raw = b.get("raw") or {}
    cols = list(b["transports"])
    head = ["", *[TRANSPORT_NAMES.get(c, c) for c in cols]] + (["raw engine"] if raw else [])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, get, compare in ROWS:
        base = get(raw) if raw else None
        cells = []
        for c, f in b["transports"].items():
            v = get(f)
            r = ratio(v, base) if compares(compare, c) else ""
            cells.append(f"{num(v)} ({r})" if r else num(v))
        if raw:
            cells.append(num(base))
        if all(x == "-" for x in cells):
            continue
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return out


def sweep_table(doc: dict[str, Any]) -> list[str]:
    rows = doc.get("concurrency", [])
    if not rows:
        return []
    base = {r["streams"]: r for r in rows if r["subject"] == PEER_BASELINE}
    head = ["", "streams", *[c for c, _ in SWEEP_COLS]]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        b = base.get(r["streams"]) if r["kind"] == "morpheus" and r["backend"] == "piper" else None
        cells = []
        for _, get in SWEEP_COLS:
            v = get(r)
            rr = ratio(v, get(b)) if b else ""
            cells.append(f"{num(v)} ({rr})" if rr else num(v))
        out.append(f"| {_who(r, doc)} | {r['streams']} | " + " | ".join(cells) + " |")
    return out


def targets_table(doc: dict[str, Any]) -> list[str]:
    if not doc.get("targets"):
        return []
    out = ["| part | target | measured | threshold | |", "|---|---|---|---|---|"]
    for t in doc["targets"]:
        verdict = {True: "met", False: "**missed**", None: "not measured"}[t["met"]]
        out.append(f"| {t['part']} | {t['target']} | {num(t['value'])} | {t['op']} "
                   f"{t['limit']:g} | {verdict} |")
    view = transports_view(doc) or doc  # the peers' versions
    held = [f"{_who({'subject': s}, view)}: {n if n is not None else 'none'}"
            for s, n in doc.get("capacity", {}).items()]
    if held:
        out += ["", "Streams held (the largest number started at once, of the levels measured, "
                "with no underflow, 429 or error and first audio p95 within "
                f"{PROMPT_START_MS:.0f} ms): " + "; ".join(held) + "."]
    return out


def part_table(figures: dict[str, Any]) -> list[str]:
    """Every figure of a component part, one row each."""
    rows = [(k, v) for k, v in flat(figures) if k != "duration_s"]
    out = ["| figure | value |", "|---|---|"]
    for key, value in rows:
        shown = value if isinstance(value, str) else num(value)
        out.append(f"| {key} | {str(shown).replace('|', '/')} |")
    return out


def performance_md(doc: dict[str, Any], image_prefix: str = "") -> str:
    lines = header(doc)
    view = transports_view(doc)
    if view is not None:
        lines += transports_md(view, image_prefix)
    for name, figures in doc.get("parts", {}).items():
        if name == "transports" and view is not None:
            continue
        if name == "soak" and "error" not in figures:
            from bench.parts.soak.report import soak_md

            lines += ["", "### Chaos soak", "", *soak_md(figures, doc.get("plots", []),
                                                        image_prefix)]
            continue
        from bench.report_parts import RENDERERS

        render = RENDERERS.get(name) if "error" not in figures else None
        lines += ["", f"### Part: {name}", "",
                  f"`python scripts/bench.py --parts {name}` ({num(figures.get('duration_s'))} s"
                  " in this run).", "",
                  *(render(figures, doc.get("plots", []), image_prefix) if render
                    else part_table(figures))]
    targets = targets_table(doc)
    if targets:
        lines += ["", "### Targets", "", *targets]
    return "\n".join(lines) + "\n"


def transports_md(doc: dict[str, Any], image_prefix: str) -> list[str]:
    lines: list[str] = []
    plots = doc.get("plots", [])
    compare = compare_table(doc)
    if compare:
        lines += ["", "### How we compare", "",
                  "The same voice (en_US joe medium) and the same texts, in the same run. Raw "
                  "engine: Piper's Python API in the benchmark process with the thread count "
                  "Morpheus gives a lone stream. Piper's own HTTP server answers with a whole WAV "
                  "(its first audio is its time to first byte); wyoming-piper streams a sentence "
                  "at a time with one synthesis at a time.", "", *compare]
    if "first_audio_peers.png" in plots:
        lines += ["", f"![first audio beside the peers]({image_prefix}first_audio_peers.png)"]
    for b in doc["backends"]:
        raw = b.get("raw_engine") or {}
        lines += ["", f"### {b['backend']}: every transport", "",
                  f"Ratios in parentheses: to the raw engine ({raw.get('name', 'none')}) on the "
                  "same text. WebSocket and WebRTC deliver in real time by design, so their RTF, "
                  "chunk and jitter figures have no engine ratio. Underflows: a client that starts "
                  f"playing at {num(doc['playback_buffer_ms'])} ms of audio and plays in real "
                  "time (WebRTC: the server's own count; it paces the track).", "",
                  *backend_table(doc, b), *overhead_lines(b)]
    sweep = sweep_table(doc)
    if sweep:
        lines += ["", "### Concurrency", "",
                  "All streams start at once, each a different text of about "
                  f"{doc['plan']['sweep_text_chars']} characters (whole sentences of the "
                  "narration, each stream's from a different place in it) over HTTP (wyoming-piper over Wyoming). Ratios: to Piper's own HTTP "
                  "server at the same stream count.", "", *sweep]
    if "first_audio_vs_concurrency.png" in plots:
        lines += ["", f"![first audio vs concurrency]({image_prefix}first_audio_vs_concurrency.png)"]
    narr = [(b["backend"], t, n) for b in doc["backends"] for t, n in b.get("narration", {}).items()]
    if narr:
        lines += ["", "### The 5-minute narration", "",
                  "| | audio | first audio | RTF | underflows (client / server) | lowest buffer "
                  "while playing |", "|---|---|---|---|---|---|"]
        for backend, t, n in narr:
            lines.append(f"| {backend}, {TRANSPORT_NAMES.get(t, t)} | {num(n['audio_s'])} s | "
                         f"{num(n['first_audio_ms'])} ms | {num(n['rtf'])} | {n['underflows']} / "
                         f"{num(n['server_underflows'])} | {num(n['min_buffer_ms'])} ms |")
    if "narration_buffer.png" in plots:
        lines += ["", f"![buffer depth during the narration]({image_prefix}narration_buffer.png)"]
    return lines


def overhead_lines(b: dict[str, Any]) -> list[str]:
    """The server's overhead, like with like: the adapter alone on the same first segment."""
    adapter, over = b.get("adapter") or {}, b.get("overhead_ms") or {}
    if not adapter:
        return []
    return ["", f"Server overhead: HTTP first audio minus the first chunk of Morpheus' own "
            f"{b['backend']} adapter run alone in the benchmark process on the server's first "
            "segment of the same prompt (it streams that segment the same way): "
            f"{num(over.get('sentence'))} ms on the ~120-character sentences (adapter "
            f"{num(_g(adapter, 'first_segment_ms', 'p50'))} ms), {num(over.get('short'))} ms "
            f"on the smart-home answers (adapter {num(_g(adapter, 'first_segment_short_ms', 'p50'))}"
            " ms), p50s."]


__all__ = ["performance_md"]
