"""A batch's silent edges, trimmed as it streams, and the pause its punctuation asks for.

Kokoro opens every call with ~0.3 s of silence (the start pad) and, when the text does not end
a sentence, holds its last phoneme with ~0.5 s of near-silence. A segment cut mid-sentence by
the chunker (a short first segment, then larger ones) therefore left a ~0.9 s hole inside the
sentence, and every reply began with 0.3 s of silence counted as first audio; Whisper heard
such a seam as a different word. kokoro-onnx trims both edges of each batch and adds a pause
by punctuation; so does this, window by window: silence before the first sound is dropped (but
`MARGIN_MS` before it), silence at the end of a window is held until the next window shows
whether it is a pause inside the batch (then it is sent as it was) or its end (then it is cut
to the pause the batch's last punctuation asks for).
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE_HZ = 24_000
BLOCK = 240  # 10 ms: the resolution of the trim
SILENT_DBFS = -60.0  # a block quieter than this is silence (Kokoro's pads are below -85)
MARGIN_MS = 20.0  # kept before the first sound and after the last (onsets and decays)
SENTENCE_PAUSE_MS = 250.0  # kokoro-onnx's own pauses: after . ! ? and after , ; :
CLAUSE_PAUSE_MS = 100.0
SENTENCE_END = frozenset(".!?。！？…")
CLAUSE_END = frozenset(",;:、，；：—")

_SILENT_POWER = 10 ** (SILENT_DBFS / 10)
_MARGIN = int(MARGIN_MS * SAMPLE_RATE_HZ / 1000)


def pause_after(phonemes: str) -> float:
    """ms of silence after a batch, by the punctuation it ends with (none mid-sentence)."""
    tail = phonemes.rstrip(" \"'”’)")
    if tail and tail[-1] in SENTENCE_END:
        return SENTENCE_PAUSE_MS
    if tail and tail[-1] in CLAUSE_END:
        return CLAUSE_PAUSE_MS
    return 0.0


def _sounding(audio: np.ndarray) -> np.ndarray:
    """Indices of the 10 ms blocks of `audio` (float, full scale 1; whole blocks) louder than
    silence."""
    blocks = audio.reshape(-1, BLOCK).astype(np.float64)
    return np.flatnonzero((blocks ** 2).mean(axis=1) > _SILENT_POWER)


class Edges:
    """One batch's audio in, window by window; out, the same audio less its silent edges.

    `lead_samples` is how much was dropped before the first sound (word timings of the batch
    move earlier by it); `sent_samples` how much has gone out. `trim=False` passes the audio
    through as the model made it (the windows themselves, for their tests)."""

    def __init__(self, pause_ms: float, *, trim: bool = True) -> None:
        self._trim = trim
        self._pause = int(pause_ms * SAMPLE_RATE_HZ / 1000)
        self._started = False
        self._pre: np.ndarray = np.zeros(0, dtype=np.float32)  # the last MARGIN of silence before a sound
        self._held: np.ndarray = np.zeros(0, dtype=np.float32)  # trailing silence of the windows so far
        self._rest: np.ndarray = np.zeros(0, dtype=np.float32)  # a last part-block, until the next window
        self._lead_seen = 0  # samples before the first sound
        self.lead_samples = 0
        self.sent_samples = 0

    def feed(self, audio: np.ndarray) -> np.ndarray:
        """What of this window can go out now (possibly nothing)."""
        if not self._trim:
            return self._out(audio)
        # whole blocks from the batch's start, so the trim is the same however it is windowed
        audio = np.concatenate([self._rest, audio])
        whole = len(audio) // BLOCK * BLOCK
        audio, self._rest = audio[:whole], audio[whole:]
        loud = _sounding(audio)
        if not self._started:
            if not len(loud):
                self._pre = np.concatenate([self._pre, audio])[-_MARGIN:]
                self._lead_seen += len(audio)
                return self._out(np.zeros(0, dtype=np.float32))
            onset = int(loud[0]) * BLOCK
            pre = np.concatenate([self._pre, audio[:onset]])[-_MARGIN:]
            self.lead_samples = self._lead_seen + onset - len(pre)
            self._started = True
            self._held = pre  # goes out just before the first sound, as a pause would
            audio, loud = audio[onset:], loud - loud[0]
        if not len(loud):
            self._held = np.concatenate([self._held, audio])
            return self._out(np.zeros(0, dtype=np.float32))
        last = min(len(audio), (int(loud[-1]) + 1) * BLOCK)
        out = np.concatenate([self._held, audio[:last]])
        self._held = audio[last:]
        return self._out(out)

    def end(self) -> np.ndarray:
        """The batch's close: the held silence cut to the margin and the pause."""
        if not self._trim:
            return self._out(np.zeros(0, dtype=np.float32))
        rest, self._rest = self._rest, np.zeros(0, dtype=np.float32)
        loud_rest = len(rest) > 0 and float((rest.astype(np.float64) ** 2).mean()) > _SILENT_POWER
        if not self._started and not loud_rest:
            return self._out(np.zeros(0, dtype=np.float32))
        out = np.zeros(0, dtype=np.float32)
        if loud_rest:  # a sound in the last part-block: what was held is a pause before it
            if not self._started:
                pre = self._pre[-_MARGIN:]
                self.lead_samples = self._lead_seen - len(pre)
                self._started, self._held = True, pre
            out, self._held = np.concatenate([self._held, rest]), np.zeros(0, dtype=np.float32)
        else:
            self._held = np.concatenate([self._held, rest])
        keep = _MARGIN + self._pause
        tail = self._held[:keep]
        if len(tail) < keep:
            tail = np.concatenate([tail, np.zeros(keep - len(tail), dtype=np.float32)])
        self._held = np.zeros(0, dtype=np.float32)
        return self._out(np.concatenate([out, tail]))

    def _out(self, audio: np.ndarray) -> np.ndarray:
        self.sent_samples += len(audio)
        return audio


__all__ = ["Edges", "pause_after"]
