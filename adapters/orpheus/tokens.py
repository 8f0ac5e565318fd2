"""Orpheus speech tokens: `<custom_token_N>` text -> SNAC codes -> 7-code frames, and the
SNAC 24 kHz frame geometry (one frame = 2048 samples)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger("morpheus.snac")

SNAC_RATE_HZ = 24_000
CODEBOOK_SIZE = 4096
TOKENS_PER_FRAME = 7
SAMPLES_PER_FRAME = 2048  # 4 latent steps x hop 512: 85.33 ms at 24 kHz
CUSTOM_TOKEN_OFFSET = 10  # <custom_token_0..9> are control tokens (start/end of speech, ...)
MAX_CUSTOM_TOKEN = CUSTOM_TOKEN_OFFSET + TOKENS_PER_FRAME * CODEBOOK_SIZE - 1

Frame = tuple[int, int, int, int, int, int, int]

_TOKEN_RE = re.compile(r"<custom_token_(\d+)>")
_PARTIAL_RE = re.compile(r"<custom_token_\d{0,8}")
_TOKEN_PREFIX = "<custom_token_"


# ---------------------------------------------------------------------------- tokens -> codes


@dataclass
class ParserStats:
    """What a TokenParser saw; bad frames are counted here and logged, never silently lost."""

    audio_tokens: int = 0
    control_tokens: int = 0
    frames: int = 0
    bad_tokens: int = 0
    bad_frames: int = 0
    tail_tokens_dropped: int = 0  # an incomplete last frame at the end of the stream


class TokenParser:
    """Incremental `<custom_token_N>` text -> SNAC codes, robust to how the text is split.

    `feed()` accepts any piece of streamed text: several tokens, part of a token (the rest
    arrives in the next piece), or non-audio text (ignored). It returns the codes of the frames
    completed by this piece, always whole 7-code frames. Code = N - 10 - 4096 * (i mod 7), where
    i counts audio tokens. Code 0 is valid. A token out of range for its position spoils its
    frame: the frame is dropped and counted, but i still advances, so the next frame keeps its
    alignment. Tokens N < 10 are control tokens (start/end of speech) and do not advance i.
    """

    def __init__(self) -> None:
        self._carry = ""
        self._position = 0
        self._frame: list[int] = []
        self._frame_bad = False
        self.stats = ParserStats()

    def feed(self, text: str) -> list[int]:
        buf = self._carry + text
        out: list[int] = []
        end = 0
        for match in _TOKEN_RE.finditer(buf):
            self._accept(int(match.group(1)), out)
            end = match.end()
        self._carry = _partial_token_tail(buf[end:])
        return out

    def finish(self) -> int:
        """End of stream: drop (and count) an incomplete last frame; return its token count."""
        dropped = len(self._frame)
        if dropped:
            log.warning("dropping %d tokens of an incomplete last SNAC frame", dropped)
        self.stats.tail_tokens_dropped += dropped
        self._frame = []
        self._frame_bad = False
        self._carry = ""
        return dropped

    def _accept(self, n: int, out: list[int]) -> None:
        if n < CUSTOM_TOKEN_OFFSET:
            self.stats.control_tokens += 1
            return
        slot = self._position % TOKENS_PER_FRAME
        code = n - CUSTOM_TOKEN_OFFSET - CODEBOOK_SIZE * slot
        self._position += 1
        self.stats.audio_tokens += 1
        if not 0 <= code < CODEBOOK_SIZE:
            self.stats.bad_tokens += 1
            self._frame_bad = True
        self._frame.append(code)
        if slot < TOKENS_PER_FRAME - 1:
            return
        if self._frame_bad:
            self.stats.bad_frames += 1
            log.warning("skipping SNAC frame %d: token out of range for its position",
                        self._position // TOKENS_PER_FRAME - 1)
        else:
            out.extend(self._frame)
            self.stats.frames += 1
        self._frame = []
        self._frame_bad = False


def _partial_token_tail(tail: str) -> str:
    """The part of `tail` that may be the start of a token cut at a piece boundary."""
    cut = tail.rfind("<")
    if cut < 0:
        return ""
    candidate = tail[cut:]
    if _TOKEN_PREFIX.startswith(candidate) or _PARTIAL_RE.fullmatch(candidate):
        return candidate
    return ""


def split_frames(codes: Sequence[int]) -> list[Frame]:
    """Flat codes (a multiple of 7) -> 7-code frames."""
    if len(codes) % TOKENS_PER_FRAME:
        raise ValueError(f"{len(codes)} codes is not a whole number of frames")
    return [tuple(codes[i : i + TOKENS_PER_FRAME])  # type: ignore[misc]
            for i in range(0, len(codes), TOKENS_PER_FRAME)]


def frames_to_codebooks(
    frames: Sequence[Sequence[int]],
) -> tuple[list[int], list[int], list[int]]:
    """Frames [c0..c6] -> SNAC's three codebooks: [c0], [c1, c4], [c2, c3, c5, c6] per frame."""
    coarse: list[int] = []
    middle: list[int] = []
    fine: list[int] = []
    for f in frames:
        if len(f) != TOKENS_PER_FRAME:
            raise ValueError(f"a frame has {TOKENS_PER_FRAME} codes, got {len(f)}")
        coarse.append(f[0])
        middle.extend((f[1], f[4]))
        fine.extend((f[2], f[3], f[5], f[6]))
    return coarse, middle, fine


__all__ = ["CODEBOOK_SIZE", "CUSTOM_TOKEN_OFFSET", "MAX_CUSTOM_TOKEN", "SAMPLES_PER_FRAME",
           "SNAC_RATE_HZ", "TOKENS_PER_FRAME", "Frame", "ParserStats", "TokenParser",
           "frames_to_codebooks", "split_frames"]
