"""The soak's figures as text (stdout), markdown (docs/bench/performance.md) and a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _n(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.0f}" if abs(v) >= 100 or v.is_integer() else f"{v:.2f}"
    return str(v)


def summary(s: dict[str, Any]) -> list[tuple[str, str]]:
    o = s["outcomes"]
    res = s["resources"]["primary"]
    rows = [
        ("load", f"{s['concurrency']['streams']} streams in flight for {_n(s['soak_s'])} s "
                 f"({s['concurrency']['source']})"),
        ("requests", f"{o['requests']}: completed {o['completed']}, cancelled by the client "
                     f"{o['cancelled']}, refused {o['refused']}, failed {o['failed']}"),
        ("refusals retried (429/503 with Retry-After, busy)",
         f"{o['refusals_retried']} ({o['completed_after_refusal']} completed on a retry)"),
        ("5xx", f"{o['http_5xx']} {o['http_5xx_by_status'] or ''}".strip()),
        ("streams short of their text", f"{s['short_streams']['count']} (tolerance "
                                        f"{100 * s['short_streams']['tolerance']:.0f}%)"),
        ("degraded (failed over) streams", _n(s["degraded_streams"])),
        ("underflows: client / server", f"{_n(s['underflows_client'])} / "
                                        f"{_n(s['underflows_server'])}"),
        ("first audio p50 / p95 (ms)", f"{_n(s['first_audio_ms']['p50'])} / "
                                       f"{_n(s['first_audio_ms']['p95'])}"),
    ]
    for key, label in (("rss_mb", "primary RSS (MB)"), ("fds", "primary open fds"),
                       ("threads", "primary threads")):
        rows.append((f"{label}: start / peak / end", f"{_n(res['start'][key])} / "
                     f"{_n(res['peak'][key])} / {_n(res['end'][key])} (end/start "
                     f"{res['end_over_start'][key]:.3f})"))
    for key, label in (("fds_left", "descriptors not given back"),
                       ("threads_left", "threads not given back (by wait)"),
                       ("children_at_end", "child processes at the end")):
        if res.get(key):
            rows.append((label, str(res[key])))
    return rows


def print_soak(s: dict[str, Any]) -> None:
    print("\n== chaos soak ==")
    for label, value in summary(s):
        print(f"  {label:52s} {value}")
    for t, counts in s["outcomes"]["by_transport"].items():
        print(f"  {t:52s} {counts}")
    for f in s["faults"]:
        extra = {k: v for k, v in f.items() if k not in ("fault", "at_s")}
        print(f"  fault at {f['at_s']:>6} s: {f['fault']:22s} {extra}")
    for f in s.get("failures", [])[:10]:
        print(f"  failed: {f}")
    for x in s["short_streams"]["streams"][:10]:
        print(f"  short: {x}")


def soak_md(s: dict[str, Any], plots: list[str], image_prefix: str) -> list[str]:
    lines = ["`python scripts/bench.py --parts soak` (bench/parts/soak): two replicas behind "
             "HAProxy (deploy/haproxy/haproxy.cfg) with a network upstream behind their "
             "`openai_tts` backend; HTTP, WebSocket, WebRTC, ElevenLabs and Wyoming clients at "
             "once while faults are injected on a schedule. docs/bench/soak.md says how each "
             "figure is taken.", "", "| | |", "|---|---|"]
    lines += [f"| {label} | {value} |" for label, value in summary(s)]
    lines += ["", "| face | outcomes |", "|---|---|"]
    lines += [f"| {t} | {', '.join(f'{k} {v}' for k, v in c.items())} |"
              for t, c in s["outcomes"]["by_transport"].items()]
    lines += ["", "| at (s) | fault | what happened |", "|---|---|---|"]
    for f in s["faults"]:
        extra = ", ".join(f"{k} {v}" for k, v in f.items() if k not in ("fault", "at_s"))
        lines.append(f"| {f['at_s']} | {f['fault']} | {extra} |")
    if s.get("failures"):
        lines += ["", "Failures:", ""]
        lines += [f"- {f['transport']} via {f['replica']}: {f['reason']}" for f in s["failures"]]
    if "soak.png" in plots:
        lines += ["", f"![the soak over time]({image_prefix}soak.png)"]
    return lines


def soak_plot(doc: dict[str, Any], s: dict[str, Any], path: Path) -> bool:
    import matplotlib.pyplot as plt

    prim = s["resources"]["primary"]["series"]
    if not prim["t_s"]:
        return False
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    axes[0].plot(s["streams_in_flight"]["t_s"], s["streams_in_flight"]["n"], color="tab:blue")
    axes[0].set_ylabel("requests in flight")
    axes[1].plot(prim["t_s"], prim["rss_mb"], color="tab:orange", label="m1 (primary)")
    m2 = s["resources"]["drained_replica"].get("series")
    if m2:
        axes[1].plot(m2["t_s"], m2["rss_mb"], ".", ms=2, color="tab:gray", label="m2 (drained)")
    axes[1].set_ylabel("RSS (MB)")
    axes[1].legend(fontsize=7)
    axes[2].plot(prim["t_s"], prim["fds"], color="tab:green", label="open fds")
    axes[2].plot(prim["t_s"], prim["threads"], color="tab:red", label="threads")
    axes[2].set_ylabel("m1")
    axes[2].legend(fontsize=7)
    axes[2].set_xlabel("seconds since the load started")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        for f in s["faults"]:
            ax.axvline(f["at_s"], color="gray", lw=0.6, ls=":")
    m = doc["machine"]
    fig.suptitle(f"Chaos soak: {s['concurrency']['streams']} streams, faults at the dotted "
                 f"lines\n{m['cpu']}, {m['cores']} cores, {doc['date'][:10]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


__all__ = ["print_soak", "soak_md", "soak_plot", "summary"]
