"""Morpheus benchmark: one command, one bench.json, one targets table.

    python scripts/bench.py                          # every part (make bench; about an hour)
    python scripts/bench.py --parts snac,realtime    # some parts
    python scripts/bench.py --quick --out /tmp/b     # the short harness check `make test` runs
    python scripts/bench.py --parts soak --soak-s 120 --soak-streams 6
    python scripts/bench.py --parts transports --url http://127.0.0.1:5005 --backends piper
    python -m bench snac realtime                    # the same as --parts snac,realtime

Parts: transports, orchestrator, realtime, loose_bounds, wyoming, network, elevenlabs, snac,
orpheus, batching, capacity, text, kokoro, memory, soak (bench/suite.py says what each measures). Prints each part's figures and every
target with its verdict; writes OUT/bench.json (every figure, the targets, the machine, date,
command and load), OUT/performance.md (docs/bench/performance.md is one) and PNG plots.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from bench.procs import REPO
from bench.suite import PARTS, QUICK_PARTS, Options


def _levels(text: str) -> tuple[int, ...]:
    levels = tuple(int(x) for x in text.split(",") if x.strip())
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("a comma list of stream counts >= 1, e.g. 1,2,4,8,16")
    return levels


def _parts(text: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    unknown = [n for n in names if n not in PARTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown part(s) {', '.join(unknown) or '(none)'}; "
                                         f"known: {', '.join(PARTS)}")
    return names


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("KEY=VALUE")
    return key, value


def parse(argv: list[str]) -> Options:
    p = argparse.ArgumentParser(prog="bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", type=_parts, help="comma list of parts to run (default: all; "
                   f"with --quick: {','.join(QUICK_PARTS)})")
    p.add_argument("--quick", action="store_true",
                   help="short variants (one trial of each kind, no narration): checks the "
                        "harness, not speed")
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="output folder")
    p.add_argument("--set", type=_pair, action="append", default=[], dest="params",
                   metavar="[PART.]KEY=VALUE",
                   help="a part's own knob (repeatable), e.g. trials=5, orpheus.streams=1,2,4, "
                        "orpheus.decoders=onnx, snac.threads=2, realtime.pacing_s=600")
    p.add_argument("--server-env", type=_pair, action="append", default=[], metavar="KEY=VALUE",
                   help="a setting for every server the parts start (repeatable)")
    g = p.add_argument_group("transports")
    g.add_argument("--url", help="measure this running server instead of starting one")
    g.add_argument("--server-pid", type=int, help="its PID (for RSS and CPU), with --url")
    g.add_argument("--backends", help="comma list (default: every ready backend; the "
                   "synthetic engine only when named)")
    g.add_argument("--concurrency", type=_levels,
                   help="stream counts for the sweep (default 1,2,4,8,16; --quick: 1,2)")
    g.add_argument("--no-peers", action="store_true", help="skip Piper's HTTP server and "
                   "wyoming-piper")
    g.add_argument("--narration", default="http,ws",
                   help="transports for the 5-minute narration (full run only)")
    g.add_argument("--api-key", default=os.environ.get("API_KEY"),
                   help="the server's API_KEY, if it has one (default: $API_KEY)")
    g = p.add_argument_group("soak")
    g.add_argument("--soak-s", type=float, help="how long the soak's load runs (default 600; "
                   "--quick: 30)")
    g.add_argument("--soak-streams", type=int, help="streams kept in flight (default: 70%% of "
                   "the capacity the sweep measured: this run's, else docs/bench/bench.json's)")
    g = p.add_argument_group("rendering")
    g.add_argument("--render", type=Path, metavar="BENCH_JSON",
                   help="measure nothing: judge, plot and tabulate an earlier bench.json into "
                        "--out (bench.json there gains the targets and plot names)")
    g.add_argument("--image-prefix", default="",
                   help="path put before the plot names in performance.md (none when the page "
                        "sits next to its plots, as docs/bench/performance.md does)")
    a = p.parse_args(argv)
    if a.render:
        return Options(out=a.out, render=a.render, image_prefix=a.image_prefix)
    return Options(
        out=a.out, parts=a.parts or (QUICK_PARTS if a.quick else tuple(PARTS)), quick=a.quick,
        url=a.url, server_pid=a.server_pid,
        backends=[b.strip() for b in a.backends.split(",") if b.strip()] if a.backends else None,
        concurrency=a.concurrency, peers=not a.no_peers,
        narration_transports=tuple(t.strip() for t in a.narration.split(",") if t.strip()),
        server_env=dict(a.server_env), api_key=a.api_key, soak_s=a.soak_s,
        soak_streams=a.soak_streams, params=dict(a.params),
        argv=[_script(), *_masked(argv)], image_prefix=a.image_prefix,
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
    if path.name == "__main__.py":  # python -m bench
        return "-m bench"
    try:
        return path.relative_to(REPO).as_posix()
    except ValueError:
        return path.as_posix()


def legacy(doc: dict[str, Any]) -> dict[str, Any]:
    """A bench.json written before the parts (transports' figures at the top) in today's
    shape, so `--render` still reads it."""
    if "parts" in doc:
        return doc
    keys = ("server", "playback_buffer_ms", "prompts", "plan", "skipped", "backends", "peers",
            "concurrency")
    part = {k: doc.pop(k) for k in keys if k in doc}
    return {**doc, "parts_run": ["transports"], "parts": {"transports": part}}


def main(argv: list[str]) -> int:
    opts = parse(argv)
    if opts.render:
        doc = legacy(json.loads(opts.render.read_text()))
        opts.out.mkdir(parents=True, exist_ok=True)
    else:
        from bench.suite import run

        doc = run(opts)
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
    failed = [n for n, f in doc["parts"].items() if "error" in f]
    if failed:
        print(f"parts that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


__all__ = ["legacy", "main", "parse"]
