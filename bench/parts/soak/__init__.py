"""Part `soak`: the chaos soak (issue 18). Mixed traffic over every face Morpheus has, at about
70% of the capacity the sweep measured, while faults are injected on a schedule; then whether
anything was lost, refused badly or left behind.

Load (load.py): a fixed number of workers, each making one request after another: HTTP
`/v1/audio/speech` (PCM and SSE streamed, whole), the native WebSocket (playback reports like
a player), WebRTC (aiortc), the ElevenLabs multi-context socket (pipecat-style turns) and
Wyoming; a quarter of the HTTP, WebSocket and WebRTC requests name the network backend.
Workers: `--soak-streams`, else 70% of the streams the sweep held (`morpheus/piper/http` in
`capacity`): this run's sweep when the transports part ran first, else the last published run
(docs/bench/bench.json); `concurrency.source` says which. Length: `--soak-s` (default 600;
--quick: 30).

Servers (topology.py): a network upstream, two replicas behind HAProxy; faults (faults.py):
upstream killed and restarted, a client that stops reading, a backend hot swap, `.env` edits,
SIGTERM to a replica (drained, then restarted); client cancels and vanishes all along.

Figures (figures.py): requests by outcome, 5xx, streams short of what their text needs,
underflows (client and server), memory, descriptors and threads of the primary replica at the
start (after a warm-up at the load's concurrency), peak and end (after the load, once settled).
Targets: bench/targets.py.
"""

from __future__ import annotations

from typing import Any

from bench.suite import PartContext


def run(ctx: PartContext) -> dict[str, Any]:
    from bench.parts.soak.run import soak

    return ctx.run_async(soak(ctx))


__all__ = ["run"]
