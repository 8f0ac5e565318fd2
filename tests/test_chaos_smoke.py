"""The chaos soak, 30 seconds of it (issue 18): two replicas behind HAProxy and a network
upstream, every face at once on a small load, every fault of the schedule (upstream killed and
restarted, a client that stops reading, a hot swap, `.env` edits, SIGTERM to a replica, client
cancels and vanishes). Asserts the soak's zero targets: no 5xx, no stream short of its text,
no stream cut by the server, and the primary replica's memory, descriptors and threads back
within 5% (or one descriptor or thread, where 5% is less than one).

The full soak (ten minutes, ~70% of the measured capacity) is `make bench`'s part `soak`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.parts.soak.topology import haproxy_binary

REPO = Path(__file__).resolve().parent.parent
RUN_TIMEOUT_S = 420  # servers up, texts measured, warm-up, 30 s of load, the drain's tail


@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
def test_chaos_soak_smoke_loses_nothing_and_gives_back_what_it_took(tmp_path: Path) -> None:
    assert haproxy_binary(), "haproxy is missing: `make test` installs it (APT_TEST)"
    out = tmp_path / "soak"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "bench.py"), "--parts", "soak", "--quick",
         "--soak-s", "30", "--soak-streams", "3", "--out", str(out)],
        env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        stdout, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the bench ends every process it started on SIGTERM
        stdout, _ = proc.communicate(timeout=60)
        raise AssertionError(f"the soak did not finish in {RUN_TIMEOUT_S} s:\n"
                             f"{stdout[-4000:]}") from None
    assert proc.returncode == 0, stdout[-4000:]
    s = json.loads((out / "bench.json").read_text())["parts"]["soak"]
    assert "error" not in s, s["error"]
    context = f"{json.dumps({k: s[k] for k in ('outcomes', 'failures', 'faults')})}\n" \
              f"{stdout[-3000:]}"

    # it ran: every face in the warm-up, a load of requests, every fault made
    assert s["warm_up"]["requests"] >= 7 and s["warm_up"]["not_completed"] == [], context
    o = s["outcomes"]
    assert o["requests"] >= 8 and o["completed"] >= 5, context
    faults = {f["fault"]: f for f in s["faults"]}
    assert set(faults) == {"env_edit", "hot_swap", "client_stops_reading", "hot_swap_back",
                           "upstream_killed", "upstream_restarted", "replica_sigterm",
                           "env_edit_back"}, context
    assert all("error" not in f for f in faults.values()), context
    assert faults["env_edit"]["seen_after_s"]["m1"] is not None, context
    assert set(faults["hot_swap"]["status"].values()) == {200}, context
    assert faults["replica_sigterm"]["exit_code"] == 0, context  # it drained and left
    assert faults["upstream_restarted"]["used_again_after_s"] is not None, context
    stalled = faults["client_stops_reading"]
    assert stalled["outcome"] == "completed" and stalled["read_after_bytes"] > 0, context

    # the zero targets
    assert o["http_5xx"] == 0, context
    assert s["short_streams"]["count"] == 0, (s["short_streams"], context)
    # No stream cut by the server (a drain that did not wait, a socket closed mid-response).
    # A request that waits too long for the engine is counted and reported by the soak, not
    # asserted here: docs/bench/soak.md, findings, 1 (it needs a sustained load to happen).
    cut = [f for f in s["failures"] if "closed" in (f["reason"] or "")]
    assert cut == [], context
    # Resources back within 5%. Descriptors and threads are counted in ones from a base of
    # about a dozen, where 5% is less than one: one more idle pool thread or keep-alive socket
    # than at the start is allowed here (a leak per request would leave one per request; the
    # soak names what is left in fds_left and threads_left).
    # Threads: a WebRTC session's native threads (its codec objects sit in reference cycles)
    # are given back by the idle server's collection (server/core/idle.py; docs/bench/soak.md,
    # findings, 3), so none is allowed here.
    res = s["resources"]["primary"]
    start, end = res["start"], res["end"]
    left = (res["start"], res["peak"], res["end"], res.get("fds_left"), res.get("threads_left"))
    # Memory: what the burst took is given back but for half of it (or 5%). An idle server
    # collects its cycles and trims the C heap (server/core/idle.py), but what stays after one
    # burst is the allocator's high-water mark (pymalloc arenas and heap pages with a live
    # object left in them), not a leak: over twelve bursts of Piper HTTP the idle level rose
    # 15-25 MB after the first and held there (docs/bench/soak.md, findings, 3). One burst
    # measured +22 of 136 MB quiet with the give-back; +24 of 146 quiet, +44 of 173 under
    # stress-ng and +62 of 172 in CI without it. A leak per request grows burst after burst:
    # the 10-minute soak's series shows it.
    took = res["peak"]["rss_mb"] - start["rss_mb"]
    assert end["rss_mb"] <= start["rss_mb"] + max(0.05 * start["rss_mb"], 0.5 * took), left
    assert end["fds"] <= max(1.05 * start["fds"], start["fds"] + 1), left
    assert end["threads"] <= max(1.05 * start["threads"], start["threads"] + 1), left
    assert set(res.get("threads_left", {})) <= {"futex_do_wait"}, left  # idle, not stuck
