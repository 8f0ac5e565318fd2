"""`make bench`: every benchmark, medians and ratios against baselines run in the same process.

Sections: speech (Piper over HTTP vs the raw engine), orchestrator (synthetic engine), snac
(SNAC decode and the llama.cpp streaming path), orpheus (concurrent Orpheus streams over HTTP),
realtime (WebRTC/WebSocket), loose_bounds (the real figures behind the wall-clock bounds tests
keep loose), wyoming (first audio of the Wyoming face vs wyoming-piper). Pick some with
`python -m bench speech orchestrator`; the default runs them all. Results are also written as
JSON to bench-results.json.
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
    wanted = [a for a in argv if a in SECTIONS] or list(SECTIONS)
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
