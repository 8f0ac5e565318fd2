"""Kokoro-82M in-process on onnxruntime, streamed inside a sentence.

    files.py     where the model and voices come from (settings, or the PyPI packages)
    voices.py    voices files, languages, blends
    phonemes.py  text -> phonemes -> token ids (espeak-ng; misaki's Japanese)
    batches.py   phonemes cut into batches of at most 510
    graph.py     the graph cut into front and generator, by structure
    norms.py     the generator's instance norms opened for per-voice statistics
    windows.py   where the generator's windows fall
    engine.py    the loaded model: sessions, calibration, front and windowed decode
    timing.py    exact word timings from the predicted durations
    adapter.py   KokoroAdapter, the backend
"""

from adapters.kokoro.adapter import KokoroAdapter

__all__ = ["KokoroAdapter"]
