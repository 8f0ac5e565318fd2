#!/usr/bin/env python3
"""Morpheus benchmark: every ready backend over HTTP, WebSocket, WebRTC (and Wyoming when the
server runs it), the raw engine and the peers a user would pick instead, all in one run.

    python scripts/bench.py                      # start a server here, measure everything
    python scripts/bench.py --quick --out /tmp/b # the short run `make test` keeps working
    python scripts/bench.py --url http://127.0.0.1:5005 --backends piper

Prints a table (every figure with its ratio to its baseline), writes OUT/bench.json with
every figure, OUT/performance.md (the README's tables) and PNG plots.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from bench.procs import REPO  # noqa: E402
from bench.suite import Options, run  # noqa: E402


async def _measure(opts: Options) -> dict:
    """run(), cancelled by SIGTERM so that every process it started is ended on the way out."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run(opts)


def _levels(text: str) -> tuple[int, ...]:
    levels = tuple(int(x) for x in text.split(",") if x.strip())
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("a comma list of stream counts >= 1, e.g. 1,2,4,8,16")
    return levels


def _env(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("KEY=VALUE")
    return key, value


def parse(argv: list[str]) -> Options:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="measure this running server instead of starting one")
    p.add_argument("--server-pid", type=int, help="its PID (for RSS and CPU), with --url")
    p.add_argument("--backends", help="comma list (default: every ready backend; the "
                   "synthetic engine only when named)")
    p.add_argument("--concurrency", type=_levels,
                   help="stream counts for the sweep (default 1,2,4,8,16; --quick: 1,2)")
    p.add_argument("--quick", action="store_true",
                   help="one trial of each kind, no narration: checks the harness, not speed")
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="output folder")
    p.add_argument("--no-peers", action="store_true", help="skip Piper's HTTP server and "
                   "wyoming-piper")
    p.add_argument("--narration", default="http,ws",
                   help="transports for the 5-minute narration (full run only)")
    p.add_argument("--server-env", type=_env, action="append", default=[], metavar="KEY=VALUE",
                   help="setting for the server this starts (repeatable)")
    p.add_argument("--api-key", default=os.environ.get("API_KEY"),
                   help="the server's API_KEY, if it has one (default: $API_KEY)")
    p.add_argument("--render", type=Path, metavar="BENCH_JSON",
                   help="measure nothing: judge, plot and tabulate an earlier bench.json into "
                        "--out (bench.json there gains the targets and plot names)")
    p.add_argument("--image-prefix", default="",
                   help="path put before the plot names in performance.md (e.g. docs/bench/)")
    a = p.parse_args(argv)
    if a.render:
        return Options(out=a.out, render=a.render, image_prefix=a.image_prefix)
    return Options(
        out=a.out, url=a.url, server_pid=a.server_pid,
        backends=[b.strip() for b in a.backends.split(",") if b.strip()] if a.backends else None,
        concurrency=a.concurrency, quick=a.quick, peers=not a.no_peers,
        narration_transports=tuple(t.strip() for t in a.narration.split(",") if t.strip()),
        server_env=dict(a.server_env), argv=[_script(), *_masked(argv)], image_prefix=a.image_prefix,
        api_key=a.api_key,
    )


def _masked(argv: list[str]) -> list[str]:
    """The command line as recorded in bench.json: an API key never is."""
    out = []
    for i, word in enumerate(argv):
        if i and argv[i - 1] == "--api-key":
            word = "***"
        elif word.startswith("--api-key="):
            word = "--api-key=***"
        out.append(word)
    return out


def _script() -> str:
    path = Path(sys.argv[0]).resolve()
    try:
        return path.relative_to(REPO).as_posix()
    except ValueError:
        return path.as_posix()


def main(argv: list[str]) -> int:
    opts = parse(argv)
    if opts.render:
        doc = json.loads(opts.render.read_text())
        opts.out.mkdir(parents=True, exist_ok=True)
    else:
        doc = asyncio.run(_measure(opts))
    from bench.plots import write_plots
    from bench.report import print_report
    from bench.report_md import performance_md
    from bench.targets import capacity, judge

    doc["targets"], doc["capacity"] = judge(doc), capacity(doc)
    out_json = opts.out / "bench.json"
    out_json.write_text(json.dumps(doc, indent=1, default=str))  # before a plot can fail
    doc["plots"] = write_plots(doc, opts.out)
    out_json.write_text(json.dumps(doc, indent=1, default=str))
    (opts.out / "performance.md").write_text(performance_md(doc, opts.image_prefix))
    print_report(doc)
    print(f"\nwrote {out_json}, {opts.out / 'performance.md'} and {len(doc['plots'])} plots")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
