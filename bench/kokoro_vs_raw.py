"""`python -m bench.kokoro_vs_raw [first|rtf|both]`: the kokoro backend against kokoro-onnx on
the same int8 model, text, voice and onnxruntime session settings (2 intra-op threads, no
spinning), in one process, interleaved runs, medians.

first: time to the first audio of a ~110-character sentence (ours: the first generator window;
kokoro-onnx: `create_stream`'s first chunk, which is the whole sentence). rtf: audio seconds per
wall second and per CPU second for an eight-sentence paragraph (ours with a listener far ahead,
as a fast HTTP reader; kokoro-onnx: `create`). Also the process RSS after loading each.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time

SENTENCE = ("Morpheus streams speech while the text is still being read, so the listener hears "
            "words long before the end.")
PARAGRAPH = " ".join([
    "The first sentence is here to be heard, and it sets the scene for what follows.",
    "Streaming speech means that the listener should never wait for a whole paragraph.",
    "Each sentence is made as the one before it plays, a little ahead of the listener.",
    "When the engine is fast enough, the buffer grows, and larger windows cost less.",
    "When it falls behind, smaller windows keep the first sound of each sentence quick.",
    "A narration of several minutes must never run dry, not even for a moment.",
    "The numbers in this benchmark are medians, because the machine is shared and noisy.",
    "And the last sentence closes the paragraph, with a little more to say than the others.",
])
VOICE = "jf_alpha"


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def main(mode: str, runs: int) -> None:
    import onnxruntime as ort
    from kokoro_onnx import Kokoro

    from adapters.base import TTSInput
    from adapters.kokoro import KokoroAdapter
    from adapters.kokoro.files import bundled_model, bundled_voices

    ours = KokoroAdapter()
    await ours.warmup()
    print(f"RSS after loading the kokoro backend: {rss_mb():.0f} MB")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    raw = Kokoro.from_session(ort.InferenceSession(str(bundled_model()), so,
                                                   providers=["CPUExecutionProvider"]),
                              str(bundled_voices()))
    raw.create(SENTENCE, VOICE, lang="en-us")  # onnxruntime's first-run allocations
    print(f"RSS with kokoro-onnx loaded too: {rss_mb():.0f} MB")

    async def first_ours() -> float:
        t0 = time.perf_counter()
        stream = ours.synth_stream(TTSInput(SENTENCE, voice=VOICE, buffer_ms=lambda: 0.0))
        await stream.__anext__()
        elapsed = time.perf_counter() - t0
        await stream.aclose()
        return elapsed

    async def first_raw() -> float:
        t0 = time.perf_counter()
        stream = raw.create_stream(SENTENCE, VOICE, lang="en-us")
        await stream.__anext__()
        elapsed = time.perf_counter() - t0
        await stream.aclose()
        return elapsed

    async def rtf_ours() -> tuple[float, float, float]:
        c0, t0, samples = time.process_time(), time.perf_counter(), 0
        async for chunk in ours.synth_stream(TTSInput(PARAGRAPH, voice=VOICE,
                                                      buffer_ms=lambda: 600_000.0)):
            samples += chunk.samples
        return samples / 24_000, time.perf_counter() - t0, time.process_time() - c0

    def rtf_raw() -> tuple[float, float, float]:
        c0, t0 = time.process_time(), time.perf_counter()
        audio, rate = raw.create(PARAGRAPH, VOICE, lang="en-us")
        return len(audio) / rate, time.perf_counter() - t0, time.process_time() - c0

    if mode in ("first", "both"):
        a, b = [], []
        for i in range(runs):
            a.append(await first_ours())
            b.append(await first_raw())
            print(f"  first audio run {i}: ours {a[-1] * 1000:.0f} ms, "
                  f"kokoro-onnx {b[-1] * 1000:.0f} ms", flush=True)
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"first audio, {len(SENTENCE)} characters: ours {ma * 1000:.0f} ms, kokoro-onnx "
              f"create_stream {mb * 1000:.0f} ms: {ma / mb:.3f} of it")
    if mode in ("rtf", "both"):
        wall, cpu = ([], []), ([], [])
        for i in range(max(1, runs // 2)):
            for k, (audio_s, wall_s, cpu_s) in enumerate((await rtf_ours(), rtf_raw())):
                wall[k].append(audio_s / wall_s)
                cpu[k].append(audio_s / cpu_s)
            print(f"  paragraph run {i}: ours x{wall[0][-1]:.2f} real time "
                  f"({cpu[0][-1]:.2f} audio s per CPU s), kokoro-onnx x{wall[1][-1]:.2f} "
                  f"({cpu[1][-1]:.2f})", flush=True)
        w = [statistics.median(x) for x in wall]
        c = [statistics.median(x) for x in cpu]
        print(f"sustained: ours x{w[0]:.2f} real time, kokoro-onnx x{w[1]:.2f}: {w[0] / w[1]:.3f}; "
              f"per CPU second {c[0]:.2f} vs {c[1]:.2f}: {c[0] / c[1]:.3f}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "both",
                     int(os.environ.get("RUNS", "5"))))
