"""An engine's blocking steps streamed from a worker thread, paced by the listener's lead."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any

from adapters.base import AudioChunk, TTSInput, iterate_in_thread

Lead = Callable[[], "float | None"]  # the listener's lead (ms ahead), as last read on the loop


async def stream_steps(req: TTSInput, steps: Callable[[Any, Lead], Iterator[AudioChunk]]
                       ) -> AsyncGenerator[AudioChunk, None]:
    """`steps(stop, lead)` (a generator that runs one onnxruntime step per chunk) in a worker
    thread. The listener's lead is read here on the loop before each step, and by the step's
    thread when it sizes a window (the stream's clock is not for other threads). When the
    stream ends, however it ends (close it: `contextlib.aclosing`), `stop.terminate` aborts
    the run still in flight."""
    import onnxruntime as ort

    stop = ort.RunOptions()
    lead: list[float | None] = [None]

    def refresh() -> None:
        lead[0] = req.buffer_ms() if req.buffer_ms is not None else None

    try:
        refresh()
        async for chunk in iterate_in_thread(lambda: steps(stop, lambda: lead[0])):
            yield chunk
            refresh()
    finally:
        stop.terminate = True


__all__ = ["Lead", "stream_steps"]
