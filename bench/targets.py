"""The benchmark's own thresholds (issue 13 and the speech targets before it), judged on a
bench.json, plus the largest stream count each subject held without an underflow."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

PEER = "peer/piper.http_server/http"
PROMPT_START_MS = 1000.0  # "holds N streams": every one starts within this (p95), none starves


def _transport(doc: dict[str, Any], backend: str, transport: str) -> dict[str, Any]:
    b = next((b for b in doc["backends"] if b["backend"] == backend), None)
    return (b or {}).get("transports", {}).get(transport, {})


def _raw(doc: dict[str, Any], backend: str) -> dict[str, Any]:
    b = next((b for b in doc["backends"] if b["backend"] == backend), None)
    return (b or {}).get("raw") or {}


def _peer(doc: dict[str, Any]) -> dict[str, Any]:
    return next((p for p in doc.get("peers", []) if p["subject"] == PEER), {})


def _level(doc: dict[str, Any], n: int, subject: str = "morpheus/piper/http") -> dict[str, Any]:
    return next((r for r in doc.get("concurrency", [])
                 if r["subject"] == subject and r["streams"] == n), {})


def _p(d: dict[str, Any], key: str, q: str) -> float | None:
    v = d.get(key)
    return v.get(q) if isinstance(v, dict) else None


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


Getter = Callable[[dict[str, Any]], float | None]

TARGETS: list[tuple[str, Getter, str, float]] = [
    ("Piper over HTTP: first audio p50, ~120-char sentence (ms)",
     lambda d: _p(_transport(d, "piper", "http"), "first_audio_ms", "p50"), "<=", 120),
    ("Piper over HTTP: first audio over Piper's HTTP server's (p50 ratio)",
     lambda d: _div(_p(_transport(d, "piper", "http"), "first_audio_ms", "p50"),
                    _p(_peer(d), "first_audio_ms", "p50")), "<=", 0.4),
    ("Piper over HTTP: overhead over the raw engine's first segment, p50 (ms)",
     lambda d: _minus(_p(_transport(d, "piper", "http"), "first_audio_ms", "p50"),
                      _p(_raw(d, "piper"), "first_segment_ms", "p50")), "<=", 10),
    ("Piper over HTTP: RTF after the first second over the raw engine's",
     lambda d: _div(_transport(d, "piper", "http").get("rtf_after_1s"),
                    _raw(d, "piper").get("rtf_after_1s")), ">=", 0.9),
    ("8 Piper streams at once: first audio p95 (ms)",
     lambda d: _p(_level(d, 8), "first_audio_ms", "p95"), "<=", 150),
    ("8 Piper streams at once: slowest stream RTF",
     lambda d: _level(d, 8).get("slowest_rtf"), ">=", 1.5),
    ("16 Piper streams at once: first audio p95 (ms)",
     lambda d: _p(_level(d, 16), "first_audio_ms", "p95"), "<=", 250),
    ("16 Piper streams at once: slowest stream RTF",
     lambda d: _level(d, 16).get("slowest_rtf"), ">=", 1.5),
    ("underflows, every Morpheus stream of the run",
     lambda d: _morpheus_underflows(d), "<=", 0),
]

OPS = {"<=": operator.le, ">=": operator.ge}


def _morpheus_underflows(doc: dict[str, Any]) -> float | None:
    counts = [f.get("underflows") for b in doc["backends"] for f in b["transports"].values()]
    counts += [r.get("underflows") for r in doc.get("concurrency", []) if r["kind"] == "morpheus"]
    counts += [n.get("underflows") for b in doc["backends"] for n in b.get("narration", {}).values()]
    known = [c for c in counts if c is not None]
    return float(sum(known)) if known else None


def judge(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value and whether it is met (None: not measured)."""
    out = []
    for name, get, op, limit in TARGETS:
        value = get(doc)
        out.append({"target": name, "value": value, "op": op, "limit": limit,
                    "met": None if value is None else bool(OPS[op](value, limit))})
    return out


def capacity(doc: dict[str, Any]) -> dict[str, int | None]:
    """Per subject: the largest stream count of the sweep that it held: no underflow, 429 or
    error, and first audio p95 within PROMPT_START_MS (a server that serializes streams never
    underflows, but its last listener waits for everyone else). Counting up from 1: a level
    past the first failure does not count."""
    out: dict[str, int | None] = {}
    for subject in dict.fromkeys(r["subject"] for r in doc.get("concurrency", [])):
        best = None
        for r in sorted((r for r in doc["concurrency"] if r["subject"] == subject),
                        key=lambda r: r["streams"]):
            p95 = _p(r, "first_audio_ms", "p95")
            if (r["underflows"] or r["rejected_429"] or r["errors"] or p95 is None
                    or p95 > PROMPT_START_MS):
                break
            best = r["streams"]
        out[subject] = best
    return out


__all__ = ["PROMPT_START_MS", "TARGETS", "capacity", "judge"]
