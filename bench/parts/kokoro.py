"""Part `kokoro`: what a listener understands of Kokoro through Morpheus against kokoro-onnx
alone, on the same texts, model, voice and threads (issue 21: WER within 0.02 of the raw
engine's).

Each text is spoken whole through `/v1/audio/speech` (the kokoro backend: a sentence's
generator run in windows, the text front end in front) and by kokoro-onnx's `create` (a
whole-sentence decode per batch), and both are heard by Whisper base (tests/recognizer.py);
WER is against the text as a reader says it (tests/wer.py normalizes numbers and case). The
first-audio, speed, narration and two-stream figures are in the `transports` part, which runs
Kokoro like every backend beside this same raw engine (bench/raw.py).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.raw import RawKokoro
from bench.suite import PartContext
from server.config import Settings
from tests.conftest import running_server
from tests.recognizer import transcribe, wer

TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "Streaming speech means that the listener should never wait for a whole paragraph.",
    "Each sentence is made as the one before it plays, a little ahead of the listener.",
    "When the engine is fast enough, the buffer grows, and larger windows cost less.",
    "A narration of several minutes must never run dry, not even for a moment.",
    "Please call me back tomorrow morning, I will be at my desk from nine until noon.",
    "The weather today is mild and sunny, with a light breeze from the west.",
    "Your order has shipped, and it should arrive within three to five business days.",
)
RATE_HZ = 24_000


async def _morpheus_pcm(srv: Any, text: str, voice: str) -> bytes:
    async with srv.http.post(srv.url + "/v1/audio/speech", json={
            "input": text, "voice": voice, "backend": "kokoro", "response_format": "pcm"}) as r:
        body = await r.read()
        if r.status != 200:
            raise RuntimeError(f"kokoro over HTTP: {r.status} {body[:300]!r}")
        return body


def _raw_pcm(raw: RawKokoro, text: str) -> bytes:
    samples, rate = raw.engine.create(text, raw.voice_name, lang="en-us")
    assert rate == RATE_HZ, rate
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


async def _run(texts: tuple[str, ...]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as d:
        settings = Settings(tts_backend="kokoro", outputs_dir=Path(d) / "outputs",
                            webrtc_host_addresses="127.0.0.1", wyoming_uri="")
        async with running_server(settings) as srv:
            config = {k.lower(): v for k, v in settings.model_dump().items()}
            raw = RawKokoro(config)
            for text in texts:
                ours = await _morpheus_pcm(srv, text, raw.voice_name)
                theirs = await asyncio.to_thread(_raw_pcm, raw, text)
                heard_ours = await asyncio.to_thread(transcribe, ours, RATE_HZ)
                heard_theirs = await asyncio.to_thread(transcribe, theirs, RATE_HZ)
                rows.append({"text": text, "morpheus_heard": heard_ours, "raw_heard": heard_theirs,
                             "morpheus_wer": round(wer(text, heard_ours), 4),
                             "raw_wer": round(wer(text, heard_theirs), 4),
                             "morpheus_s": round(len(ours) / 2 / RATE_HZ, 2),
                             "raw_s": round(len(theirs) / 2 / RATE_HZ, 2)})
    ours_wer = statistics.mean(r["morpheus_wer"] for r in rows)
    raw_wer = statistics.mean(r["raw_wer"] for r in rows)
    return {"voice": raw.voice_name, "texts": len(rows), "threads_raw": raw.threads,
            "morpheus_wer_mean": round(ours_wer, 4), "raw_wer_mean": round(raw_wer, 4),
            "wer_minus_raw": round(ours_wer - raw_wer, 4), "rows": rows}


def run(ctx: PartContext) -> dict[str, Any]:
    """Measure Kokoro's intelligibility through Morpheus and alone (targets: bench/targets.py)."""
    return ctx.run_async(_run(TEXTS[:2] if ctx.quick else TEXTS))
