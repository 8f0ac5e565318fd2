"""Piper's cut graph on several items at once (bench/piper_batch.py, what the batching part
measures): padded and masked as the export expects, a batched item gets what it gets alone
(the real joe voice, noise off so that runs compare)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.parts.batching import DECODER_FIRST, FLOW_FIRST, Items, first_steps
from bench.piper_batch import CutVoice, run_decoder, run_flow, run_front
from tests.piper_test_voices import joe

TEXTS = ("Oh.", "The river ran quietly past the old mill,", "Timer set for ten minutes.")


@pytest.fixture(scope="module")
def voice() -> CutVoice:
    return CutVoice.open(joe(), threads=1)


@pytest.fixture(scope="module")
def ids(voice: CutVoice) -> tuple[list[list[int]], np.ndarray, int]:
    from piper import PiperVoice
    from piper.config import PiperConfig

    config = PiperConfig.from_dict(json.loads(Path(f"{joe()}.json").read_text()))
    piper = PiperVoice(session=voice.front, config=config)
    out = [piper.phonemes_to_ids([p for s in piper.phonemize(t) for p in s]) for t in TEXTS]
    still = np.array([0.0, config.length_scale, 0.0], dtype=np.float32)
    return out, still, config.hop_length


def test_padded_items_get_their_own_front_outputs(voice: CutVoice, ids: tuple) -> None:
    items, still, _ = ids
    assert len({len(i) for i in items}) == 3  # really padded
    batched = run_front(voice, items, still)
    for item, got in zip(items, batched, strict=True):
        alone = run_front(voice, [item], still)[0]
        assert got.frames == alone.frames
        assert np.array_equal(got.durations, alone.durations)
        assert np.abs(got.z - alone.z).max() < 1e-4


def test_flow_and_first_window_batched_equal_alone(voice: CutVoice, ids: tuple) -> None:
    items, still, hop = ids
    fronts = [run_front(voice, [i], still)[0] for i in items]
    assert min(f.frames for f in fronts) < FLOW_FIRST  # "Oh." is shorter than the window
    flows = run_flow(voice, fronts, FLOW_FIRST)
    for f, got in zip(fronts, flows, strict=True):
        assert np.abs(got - run_flow(voice, [f], FLOW_FIRST)[0]).max() < 1e-5
    windows = [lat[..., :DECODER_FIRST] for lat in flows if lat.shape[-1] >= DECODER_FIRST]
    assert len(windows) >= 2
    audio = run_decoder(voice, windows, hop)
    for w, got in zip(windows, audio, strict=True):
        alone = run_decoder(voice, [w], hop)[0]
        assert got.shape == alone.shape == (DECODER_FIRST * hop,)
        assert np.abs(got - alone).max() <= 1e-4 * np.abs(alone).max()


def test_first_steps_batched_equal_alone(voice: CutVoice, ids: tuple) -> None:
    items, still, hop = ids
    it = Items.__new__(Items)  # only what first_steps reads
    it.ids, it.scales, it.hop = items[1:], still, hop
    batched = first_steps(voice, it, [0, 1])
    for k, got in enumerate(batched):
        alone = first_steps(voice, it, [k])[0]
        assert np.abs(got - alone).max() <= 1e-4 * np.abs(alone).max()


def test_unequal_decoder_windows_change_the_shorter_ones_tail(voice: CutVoice,
                                                              ids: tuple) -> None:
    """Why only windows of one length may share a decoder run: it has no mask."""
    items, still, hop = ids
    front = run_front(voice, [items[1]], still)[0]
    latent = run_flow(voice, [front], front.frames)[0]
    short, long = latent[..., :40], latent[..., :80]
    got = run_decoder(voice, [short, long], hop)[0]
    alone = run_decoder(voice, [short], hop)[0]
    head = slice(0, 24 * hop)  # far from the end: the same
    assert np.abs(got[head] - alone[head]).max() <= 1e-4 * np.abs(alone).max()
    assert np.abs(got[-hop:] - alone[-hop:]).max() > 1e-3 * np.abs(alone).max()
