"""Part `text`: what the text front end (dsp/textfront) costs on the first-audio path.

Two measures:

- `front`: the front end alone, in this process (dsp/textfront/bench.py): per ~120-character
  segment of LLM-style replies pushed whole (p50/p95 over segments, each the median of its
  repeats), per 3-character delta while streaming, the text it holds back, and how many more
  deltas the chunker's first segment waits for with it than without it.
- first audio through a Piper server in this process, with normalization on and off
  (`normalize` on /v1/audio/speech, `session.update` on the WebSocket), runs interleaved so
  that machine noise falls on both alike: HTTP (the whole text in one request) and the
  WebSocket fed 3-character deltas as fast as they come. Two texts: a plain sentence, where
  the front end has nothing to change (its pure cost), and the corpus' LLM replies (markdown,
  numbers, emoji), where "off" reads the markup aloud. Figures are p50s and p95s, and the
  paired differences on - off.

Knobs: `--set trials=12` (rounds of the interleaved runs), `--set text.repeat=21` (front end).
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.parts.realtime import FIRST_AUDIO_TEXT, http_first_audio, ws_first_audio
from bench.record import pct
from bench.suite import PartContext
from dsp.textfront.bench import measure
from dsp.textfront.corpus import REPLIES
from server.config import Settings
from tests.conftest import running_server

TEXTS = {"plain": (FIRST_AUDIO_TEXT,), "llm": REPLIES[:4]}


def _summary(on: list[float], off: list[float]) -> dict[str, float | None]:
    diffs = [a - b for a, b in zip(on, off, strict=True)]
    return {
        "on_p50_ms": pct(on, 50), "on_p95_ms": pct(on, 95),
        "off_p50_ms": pct(off, 50), "off_p95_ms": pct(off, 95),
        "on_minus_off_p50_ms": statistics.median(diffs) if diffs else None,
    }


async def _first_audio(trials: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        settings = Settings(tts_backend="piper", outputs_dir=Path(d) / "outputs",
                            webrtc_host_addresses="127.0.0.1", wyoming_uri="")
        async with running_server(settings) as srv:
            for text in (FIRST_AUDIO_TEXT, *REPLIES[:2]):  # warm-up: engine, both paths
                await http_first_audio(srv, text)
                await ws_first_audio(srv, text)
            for kind, texts in TEXTS.items():
                runs: dict[str, list[float]] = {k: [] for k in
                                                ("http_on", "http_off", "ws_on", "ws_off")}
                for i in range(trials):
                    text = texts[i % len(texts)]
                    runs["http_on"].append(await http_first_audio(srv, text, normalize=True))
                    runs["http_off"].append(await http_first_audio(srv, text, normalize=False))
                    runs["ws_on"].append(await ws_first_audio(srv, text, {"normalize": True}))
                    runs["ws_off"].append(await ws_first_audio(srv, text, {"normalize": False}))
                out[kind] = {"texts": len(texts), "runs": trials,
                             "http": _summary(runs["http_on"], runs["http_off"]),
                             "ws_3char": _summary(runs["ws_on"], runs["ws_off"])}
    return out


def run(ctx: PartContext) -> dict[str, Any]:
    """Measure the text front end's figures (targets: bench/targets.py)."""
    repeat = int(ctx.param("repeat") or (3 if ctx.quick else 21))
    figures: dict[str, Any] = {"front": asdict(measure(repeat))}
    figures["first_audio"] = ctx.run_async(_first_audio(ctx.trials(16, 2)))
    return figures
