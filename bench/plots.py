"""PNG plots from bench.json (matplotlib, Agg): first audio vs concurrency, buffer depth over
the narration, first audio side by side with the peers (transports); first audio p95 against
conversational agents for Morpheus and the peers (capacity); streams in flight and the
server's memory, descriptors and threads over the chaos soak."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
          "tab:pink", "tab:gray", "tab:olive", "tab:cyan")


def _label(subject: str) -> str:
    kind, name, transport = subject.split("/")
    if kind == "morpheus":
        return f"Morpheus {name} ({transport})"
    if kind == "raw":
        return f"raw {name} engine"
    return name


def _title(doc: dict[str, Any], what: str) -> str:
    m = doc["machine"]
    return f"{what}\n{m['cpu']}, {m['cores']} cores, {doc['date'][:10]}"


def first_audio_vs_concurrency(doc: dict[str, Any], path: Path) -> bool:
    rows = doc.get("concurrency", [])
    subjects = list(dict.fromkeys(r["subject"] for r in rows))
    if not subjects:
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, s in enumerate(subjects):
        pts = sorted((r["streams"], r["first_audio_ms"]["p50"], r["first_audio_ms"]["p95"])
                     for r in rows if r["subject"] == s and r["first_audio_ms"]["p50"])
        if not pts:
            continue
        n, p50, p95 = zip(*pts, strict=True)
        style = "-" if s.startswith("morpheus") else "--"
        ax.plot(n, p95, style, marker="o", color=COLORS[i % len(COLORS)],
                label=f"{_label(s)} p95")
        ax.plot(n, p50, style, marker=".", alpha=0.5, color=COLORS[i % len(COLORS)],
                label=f"{_label(s)} p50")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    levels = sorted({r["streams"] for r in rows})
    ax.set_xticks(levels, [str(x) for x in levels])
    ax.set_xlabel("concurrent streams (all started at once)")
    ax.set_ylabel("first audio (ms, log scale)")
    ax.set_title(_title(doc, "First audio vs concurrency (different texts of ~"
                        f"{doc['plan']['sweep_text_chars']} characters)"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def narration_buffer(doc: dict[str, Any], path: Path) -> bool:
    series = [(b["backend"], t, n) for b in doc["backends"]
              for t, n in b.get("narration", {}).items() if n["buffer_depth"]["t_s"]]
    if not series:
        return False
    transports = list(dict.fromkeys(t for _, t, _ in series))
    fig, axes = plt.subplots(len(transports), 1, figsize=(9, 3.2 * len(transports)),
                             squeeze=False)
    for ax, transport in zip(axes[:, 0], transports, strict=True):
        for i, (backend, t, n) in enumerate(series):
            if t != transport:
                continue
            ms = n["buffer_depth"]["ms"]
            ax.plot(n["buffer_depth"]["t_s"], [x / 1000 for x in ms], color=COLORS[i],
                    label=f"{backend}: {n['underflows']} underflows, "
                          f"{n['audio_s']:.0f} s of audio")
        ax.axhline(doc["playback_buffer_ms"] / 1000, color="gray", ls=":", lw=1,
                   label=f"start buffer {doc['playback_buffer_ms']:.0f} ms")
        ax.set_ylabel("audio queued at the client (s)")
        ax.set_title(f"over {transport}", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    axes[-1, 0].set_xlabel("time since first audio (s)")
    fig.suptitle(_title(doc, "Buffer depth of a real-time client during the 5-minute narration"),
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def first_audio_peers(doc: dict[str, Any], path: Path) -> bool:
    """Grouped bars: the single-stream sentence figure, then each sweep level, per subject."""
    piper = next((b for b in doc["backends"] if b["backend"] == "piper"), None)
    if piper is None:
        return False
    single = {f["subject"]: f for f in [*piper["transports"].values(), piper.get("raw") or {},
                                        *doc.get("peers", [])] if f}
    groups: dict[str, dict[str, float]] = {"1 stream\n~120-char sentence\np50": {
        s: f["first_audio_ms"]["p50"] for s, f in single.items()
        if f.get("first_audio_ms", {}).get("p50")}}
    chars = doc["plan"]["sweep_text_chars"]
    for r in doc.get("concurrency", []):
        if r["backend"] == "piper" and r["first_audio_ms"]["p95"]:
            key = f"{r['streams']} at once\n~{chars}-char texts\np95"
            groups.setdefault(key, {})[r["subject"]] = r["first_audio_ms"]["p95"]
    subjects = list(dict.fromkeys(s for g in groups.values() for s in g))
    if not subjects:
        return False
    color = {s: COLORS[i % len(COLORS)] for i, s in enumerate(subjects)}
    width = 0.8 / max(len(g) for g in groups.values())
    fig, ax = plt.subplots(figsize=(10, 5))
    labelled: set[str] = set()
    for g, grp in enumerate(groups.values()):
        left = g - width * (len(grp) - 1) / 2  # the bars of a group are centred on it
        for i, (s, y) in enumerate(grp.items()):
            bar = ax.bar(left + i * width, y, width, color=color[s],
                         label=None if s in labelled else _label(s))
            labelled.add(s)
            ax.bar_label(bar, [f"{y:.0f}"], fontsize=6, rotation=90, padding=2)
    ax.set_xticks(range(len(groups)), list(groups), fontsize=7)
    ax.set_yscale("log")
    ax.set_ylim(top=3 * max(y for grp in groups.values() for y in grp.values()))  # the labels
    ax.set_ylabel("first audio (ms, log scale)")
    ax.set_title(_title(doc, "First audio: Morpheus (Piper voice) beside the raw engine and "
                        "the peers"))
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def capacity_plot(doc: dict[str, Any], figures: dict[str, Any], path: Path) -> bool:
    """p95 first audio against the number of agents, every probe of every subject (the
    3-minute confirms filled, the 30-second probes hollow), the 250 ms line."""
    subjects = figures.get("subjects") or {}
    if not any(f.get("probes") for f in subjects.values()):
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (name, f) in enumerate(subjects.items()):
        color = COLORS[i % len(COLORS)]
        pts = sorted((p["agents"], p["first_audio_p95_ms"], p["confirm"], p["held"])
                     for p in f["probes"] if p["first_audio_p95_ms"])
        if not pts:
            continue
        held = f.get("agents_held")
        label = f"{_label(name)}: holds {held if held is not None else 'unconfirmed'}"
        ax.plot([p[0] for p in pts if not p[2]], [p[1] for p in pts if not p[2]], "o",
                mfc="none", color=color, label=f"{label} (30 s probes)")
        confirms = [p for p in pts if p[2]]
        if confirms:
            ax.plot([p[0] for p in confirms], [p[1] for p in confirms], "s", color=color,
                    label=f"{_label(name)}: 3-minute confirms")
    limit = (figures.get("criteria") or {}).get("first_audio_p95_ms", 250)
    ax.axhline(limit, color="gray", ls=":", lw=1, label=f"{limit:.0f} ms")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("conversational agents (1-3 sentence replies, 2-8 s user turns)")
    ax.set_ylabel("first audio p95 (ms, log scale)")
    ax.set_title(_title(doc, "Conversational capacity: first audio p95 against agents"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_plots(doc: dict[str, Any], out: Path) -> list[str]:
    from bench.report import transports_view

    made = []
    view = transports_view(doc)
    if view is not None:
        for name, plot in (("first_audio_vs_concurrency.png", first_audio_vs_concurrency),
                           ("narration_buffer.png", narration_buffer),
                           ("first_audio_peers.png", first_audio_peers)):
            if plot(view, out / name):
                made.append(name)
    capacity = doc.get("parts", {}).get("capacity")
    if capacity and "error" not in capacity and capacity_plot(doc, capacity,
                                                                out / "capacity.png"):
        made.append("capacity.png")
    soak = doc.get("parts", {}).get("soak")
    if soak and "error" not in soak:
        from bench.parts.soak.report import soak_plot

        if soak_plot(doc, soak, out / "soak.png"):
            made.append("soak.png")
    return made


__all__ = ["write_plots"]
