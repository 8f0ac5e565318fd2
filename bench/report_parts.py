"""Compact tables for the `capacity` and `batching` parts (markdown, also printed): a probe or
a batch size per row, where the generic dotted-key listing would run to hundreds of lines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def num(v: float | None) -> str:
    """A figure as the tables print it: "-" for none, fewer decimals the larger it is."""
    if v is None:
        return "-"
    if abs(v) >= 100 or float(v).is_integer():
        return f"{v:.0f}"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"


def _who(name: str, versions: dict[str, Any]) -> str:
    if name.startswith("morpheus/"):
        return "Morpheus (Piper, HTTP)"
    peer = name.split("/")[1]
    return f"{peer} {versions.get(name) or ''}".strip()


def capacity_md(figures: dict[str, Any], plots: list[str], image_prefix: str = "") -> list[str]:
    c = figures.get("criteria") or {}
    versions = figures.get("peers") or {}
    out = [f"Agents speak 1-3 sentence replies (`bench/prompts.py` REPLY_SENTENCES), listen "
           f"{c.get('listen_s')} s, independently; held = first audio p95 <= "
           f"{num(c.get('first_audio_p95_ms'))} ms, 0 underflows, no error over a "
           f"{num(c.get('confirm_s'))} s confirm, after {num(c.get('probe_s'))} s probes "
           "(doubling, then bisection). Agents speak "
           f"{num(100 * (figures.get('speaking_fraction') or 0))}% of the time. What the "
           "engine made meanwhile, 4 different ~1,000-character texts at once (aggregate RTF, "
           "before and after the search; the 1-minute load then): " + ", ".join(
               f"{num(t.get('aggregate_rtf'))} (load {num(t.get('load_1min'))})"
               for t in figures.get("throughput") or []) +
           f"; so at most {num(figures.get('bound_agents'))} agents could be served.", "",
           "| subject | agents held | Morpheus over it |", "|---|---|---|"]
    over = figures.get("over_peers") or {}
    for name, f in (figures.get("subjects") or {}).items():
        held = f.get("agents_held")
        out.append(f"| {_who(name, versions)} | {held if held is not None else 'unconfirmed'} "
                   f"| {num(over.get(name)) if name in over else ''} |")
    out += ["", "| subject | round | agents | probe s | replies | first audio p50 / p95 ms | "
            "underflows | errors | held | load (1 min) | server CPU % |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, f in (figures.get("subjects") or {}).items():
        for p in f.get("probes", []):
            out.append(f"| {_who(name, versions)} | {p['round']} | {p['agents']} | "
                       f"{num(p['duration_s'])}{' (confirm)' if p['confirm'] else ''} | "
                       f"{p['replies']} | {num(p['first_audio_p50_ms'])} / "
                       f"{num(p['first_audio_p95_ms'])} | {p['underflows']} | "
                       f"{p['errors'] + p['refused'] + p['unfinished']} | "
                       f"{'yes' if p['held'] else 'no'} | "
                       f"{' -> '.join(num(x) for x in p['load_1min'])} | "
                       f"{num(p['server_cpu_pct'])} |")
    if "capacity.png" in plots:
        out += ["", f"![conversational capacity]({image_prefix}capacity.png)"]
    return out


def batching_md(figures: dict[str, Any], plots: list[str], image_prefix: str = "") -> list[str]:
    out = ["Per item, batched / one at a time (CPU time; wall in parentheses), median of "
           f"{figures.get('rounds')} rounds; items are the first segments of different texts "
           f"({figures.get('phoneme_ids')} phoneme ids).", ""]
    sizes = [str(b) for b in figures.get("sizes", []) if b != 1]
    for mode, m in (figures.get("modes") or {}).items():
        out += [f"{mode} ({m['intra_op_threads']} intra-op thread(s), {m['workers']} worker(s), "
                f"load {' -> '.join(num(x) for x in m['load_1min'])}):", "",
                "| part | one at a time, ms/item (CPU) | " + " | ".join(
                    f"batch {b}" for b in sizes) + " |", "|---|---|" + "---|" * len(sizes)]
        for part, rows in m["parts"].items():
            one = rows.get("1") or next(iter(rows.values()))
            out.append(f"| {part} | {num(one['single_cpu_ms'])} | " + " | ".join(
                f"{num(rows[b]['ratio_cpu'])} ({num(rows[b]['ratio_wall'])})"
                for b in sizes if b in rows) + " |")
        out.append("")
    corr = figures.get("correctness") or {}
    out.append("Batched against alone, noise off: " + ", ".join(
        f"{k} {v:.2g}" for k, v in corr.items()) + ".")
    need = figures.get("needed") or {}
    lines = [f"{n} at once: p95 {num(v['measured_p95_ms'])} ms now, target "
             f"{num(v['target_p95_ms'])}: needs {num(v['needed_ratio'])}x per item"
             for n, v in need.items() if v.get("measured_p95_ms")]
    if lines:
        out.append("What the targets need of the first step: " + "; ".join(lines) +
                   f". Best batched first step measured: {num(figures.get('best_first_step_ratio'))}x.")
    return out


RENDERERS: dict[str, Callable[[dict[str, Any], list[str], str], list[str]]] = {
    "capacity": capacity_md, "batching": batching_md}

__all__ = ["RENDERERS", "batching_md", "capacity_md"]
