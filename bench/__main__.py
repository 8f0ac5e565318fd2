"""`python -m bench [section ...]`: component microbenchmarks, each against its own targets.

The benchmark users compare (every backend over every transport, the raw engine, the peers,
the concurrency sweep, plots) is `scripts/bench.py`, which `make bench` runs. These sections
measure one component each: speech (Piper over HTTP vs the raw engine, in one process),
orchestrator (the synthetic engine on a virtual clock: underflows, delivery jitter), snac (SNAC
decode and the llama.cpp streaming path), orpheus (concurrent Orpheus streams over HTTP),
realtime (WebRTC connect, pacing, barge-in, CPU per stream, WS vs HTTP first audio),
loose_bounds (the real figures behind the wall-clock bounds tests keep loose), wyoming (the
Wyoming face vs wyoming-piper), network (network adapters and failover), elevenlabs (the
ElevenLabs face). Pick some with `python -m bench snac realtime`; the default runs them all.
Results go to bench-results.json.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from pathlib import Path

SECTIONS = ("speech", "orchestrator", "snac", "orpheus", "realtime", "loose_bounds", "wyoming",
            "network", "elevenlabs")


def main(argv: list[str]) -> int:
    unknown = [a for a in argv if a not in SECTIONS]
    if unknown:
        print(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)} "
              "(the end-to-end benchmark is scripts/bench.py)", file=sys.stderr)
        return 2
    wanted = argv or list(SECTIONS)
    results: dict[str, object] = {"machine": platform.processor() or platform.machine(),
                                  "python": platform.python_version(),
                                  "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    failed = []
    for name in wanted:
        print(f"\n=== {name} ===", flush=True)
        t0 = time.perf_counter()
        try:
            results[name] = importlib.import_module(f"bench.{name}").run()
        except Exception as e:  # one broken section must not hide the others' numbers
            print(f"  {name} failed: {type(e).__name__}: {e}")
            failed.append(name)
        print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    Path("bench-results.json").write_text(json.dumps(results, indent=2, default=str))
    print("\nwrote bench-results.json")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
