"""The `text` bench part, short: the front end's cost and first audio with it on and off over
HTTP and the WebSocket, through a real Piper server; and that its targets are judged."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_text_part_measures_the_front_and_first_audio_on_and_off(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    done = subprocess.run(
        [sys.executable, "scripts/bench.py", "--parts", "text", "--quick", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads((out / "bench.json").read_text())
    part = doc["parts"]["text"]
    assert "error" not in part, part.get("error")
    front = part["front"]
    assert front["segments"] > 5 and 0 < front["segment_p50_ms"] <= front["segment_p95_ms"]
    assert 0 < front["delta_p50_ms"] <= front["delta_p95_ms"]
    assert front["held_max_chars"] >= front["held_p95_chars"] >= 0
    for kind in ("plain", "llm"):
        for path in ("http", "ws_3char"):
            f = part["first_audio"][kind][path]
            for key in ("on_p50_ms", "off_p50_ms", "on_p95_ms", "off_p95_ms"):
                assert math.isfinite(f[key]) and 0 < f[key] < 5000, (kind, path, f)
            assert math.isfinite(f["on_minus_off_p50_ms"])
    judged = {t["target"]: t for t in doc["targets"] if t["part"] == "text"}
    assert len(judged) == 2 and all(t["value"] is not None for t in judged.values()), judged
