"""Cost of the text front end: per ~120-character segment and per 3-character delta.

    python -m dsp.textfront.bench [--repeat N]

`measure()` returns the numbers for scripts/bench.py. Times are wall-clock on this process's
core; they include markup, lexicon and normalization, and the first call's imports are excluded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from dsp.chunker import Chunker
from dsp.textfront.corpus import REPLIES, segments
from dsp.textfront.front import TextFront
from dsp.textfront.options import FrontOptions
from dsp.textfront.pieces import spoken_text


@dataclass(frozen=True)
class FrontCost:
    segments: int
    segment_chars_mean: float
    segment_p50_ms: float  # one segment pushed whole and ended: its median over the repeats,
    segment_p95_ms: float  # then the percentile over segments (scheduler noise filtered)
    segment_max_ms: float
    segment_raw_p95_ms: float  # the 95th percentile of every single run (noise included)
    delta_p50_ms: float  # one push() of a 3-character delta while streaming a reply
    delta_p95_ms: float
    delta_max_ms: float
    held_p50_chars: float  # text held back after each 3-character delta
    held_p95_chars: float
    held_max_chars: int
    first_extra_deltas_p50: float  # 3-char deltas more before the chunker's first segment
    first_extra_deltas_p95: float  # exists, text through the front vs raw text
    first_extra_deltas_max: int


def _pct(values: Sequence[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _first_segment_delta(reply: str, front: TextFront | None, max_chars: int) -> int | None:
    """Index of the 3-char delta after which the chunker can pop its first segment."""
    chunker = Chunker()
    for n, i in enumerate(range(0, len(reply), 3)):
        delta = reply[i:i + 3]
        chunker.push_text(spoken_text(front.push(delta)) if front is not None else delta)
        if chunker.pop(max_chars) is not None:
            return n
    return None


def first_segment_extra_deltas(opts: FrontOptions, max_chars: int = 48) -> list[int]:
    """Per reply: how many more 3-char deltas the first segment waits for with the front."""
    extra = []
    for reply in REPLIES:
        raw = _first_segment_delta(reply, None, max_chars)
        fronted = _first_segment_delta(reply, TextFront(opts), max_chars)
        if raw is not None and fronted is not None:
            extra.append(fronted - raw)
    return extra


def measure(repeat: int = 5, options: FrontOptions | None = None) -> FrontCost:
    opts = options or FrontOptions()
    segs = segments(120)
    TextFront(opts).push(segs[0])  # imports and the language registry, once
    runs: list[list[float]] = [[] for _ in segs]
    for _ in range(repeat):
        for k, seg in enumerate(segs):
            t0 = time.perf_counter()
            front = TextFront(opts)
            front.push(seg)
            front.end()
            runs[k].append((time.perf_counter() - t0) * 1000)
    per_seg = [statistics.median(r) for r in runs]
    raw = [t for r in runs for t in r]
    per_delta: list[float] = []
    held: list[int] = []
    for _ in range(repeat):
        for reply in REPLIES:
            front = TextFront(opts)
            for i in range(0, len(reply), 3):
                t0 = time.perf_counter()
                front.push(reply[i:i + 3])
                per_delta.append((time.perf_counter() - t0) * 1000)
                held.append(len(front.pending))
            front.end()
    extra = first_segment_extra_deltas(opts)
    return FrontCost(
        segments=len(segs), segment_chars_mean=round(statistics.mean(map(len, segs)), 1),
        segment_p50_ms=round(_pct(per_seg, 0.5), 3), segment_p95_ms=round(_pct(per_seg, 0.95), 3),
        segment_max_ms=round(max(per_seg), 3), segment_raw_p95_ms=round(_pct(raw, 0.95), 3),
        delta_p50_ms=round(_pct(per_delta, 0.5), 3),
        delta_p95_ms=round(_pct(per_delta, 0.95), 3), delta_max_ms=round(max(per_delta), 3),
        held_p50_chars=_pct(held, 0.5), held_p95_chars=_pct(held, 0.95), held_max_chars=max(held),
        first_extra_deltas_p50=_pct(extra, 0.5), first_extra_deltas_p95=_pct(extra, 0.95),
        first_extra_deltas_max=max(extra))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=21)
    args = ap.parse_args()
    print(json.dumps(asdict(measure(args.repeat)), indent=2))


if __name__ == "__main__":
    main()
