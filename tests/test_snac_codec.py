"""The Orpheus SNAC pieces: token parsing, codebook layout, the SNAC loader, the streaming decoder."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from adapters.orpheus.model import load_snac
from adapters.orpheus.tokens import (
    SAMPLES_PER_FRAME,
    TokenParser,
    frames_to_codebooks,
    split_frames,
)
from adapters.orpheus.windows import StreamingSnacDecoder
from dsp.pcm import float_to_pcm16
from tests.extras import torch_or_skip
from tests.snac_fixture import frames_to_token_text, random_frames, write_snac_checkpoint


@pytest.fixture(scope="module")
def torch() -> ModuleType:
    return torch_or_skip()


def tok(n: int) -> str:
    return f"<custom_token_{n}>"


def audio_token(slot: int, code: int) -> str:
    return tok(code + 10 + 4096 * slot)


# ---------------------------------------------------------------------------- TokenParser


def test_parser_several_tokens_per_piece() -> None:
    frames = random_frames(3, seed=1)
    parser = TokenParser()
    codes = parser.feed("".join(frames_to_token_text(frames)))
    assert split_frames(codes) == frames
    assert parser.stats.frames == 3 and parser.stats.bad_frames == 0


def test_parser_tokens_split_at_every_character() -> None:
    frames = random_frames(2, seed=2)
    text = "".join(frames_to_token_text(frames))
    parser = TokenParser()
    codes: list[int] = []
    for ch in text:
        codes += parser.feed(ch)
    assert split_frames(codes) == frames


def test_parser_returns_only_whole_frames() -> None:
    tokens = frames_to_token_text(random_frames(2, seed=3))
    parser = TokenParser()
    assert parser.feed("".join(tokens[:6])) == []
    assert len(parser.feed(tokens[6])) == 7
    assert parser.feed("".join(tokens[7:10])) == []
    assert parser.finish() == 3
    assert parser.stats.tail_tokens_dropped == 3


def test_code_zero_and_4095_are_valid() -> None:
    frame = (0, 4095, 0, 4095, 0, 0, 4095)
    parser = TokenParser()
    assert parser.feed("".join(frames_to_token_text([frame]))) == list(frame)
    # code 0 at slot 0 is <custom_token_10>, which the original decoder threw away
    assert frames_to_token_text([frame])[0] == "<custom_token_10>"


def test_bad_token_drops_its_frame_and_keeps_alignment() -> None:
    good = random_frames(3, seed=4)
    tokens = frames_to_token_text(good)
    tokens[7 + 2] = audio_token(5, 17)  # frame 1, slot 2 holds a slot-5 token: out of range
    parser = TokenParser()
    codes = parser.feed("".join(tokens))
    assert split_frames(codes) == [good[0], good[2]]
    assert parser.stats.bad_frames == 1 and parser.stats.bad_tokens == 1


def test_token_beyond_the_audio_range_is_bad() -> None:
    tokens = frames_to_token_text(random_frames(2, seed=5))
    tokens[6] = tok(10 + 7 * 4096)  # one past the last audio token
    parser = TokenParser()
    assert split_frames(parser.feed("".join(tokens))) == random_frames(2, seed=5)[1:]


def test_control_tokens_and_text_are_ignored_without_shifting() -> None:
    frames = random_frames(2, seed=6)
    tokens = frames_to_token_text(frames)
    text = tok(1) + "hello " + "".join(tokens[:4]) + tok(5) + "<b>x</b>" + "".join(tokens[4:]) + tok(2)
    parser = TokenParser()
    assert split_frames(parser.feed(text)) == frames
    assert parser.stats.control_tokens == 3


def test_partial_carry_does_not_grow_on_junk() -> None:
    parser = TokenParser()
    parser.feed("<" + "x" * 10_000)
    assert parser.feed("<custom_tok") == []
    assert len(parser._carry) < 40  # only a plausible token prefix is kept


# ---------------------------------------------------------------------------- layout


def test_frames_to_codebooks_layout() -> None:
    frames = [(0, 1, 2, 3, 4, 5, 6), (10, 11, 12, 13, 14, 15, 16)]
    coarse, middle, fine = frames_to_codebooks(frames)
    assert coarse == [0, 10]
    assert middle == [1, 4, 11, 14]
    assert fine == [2, 3, 5, 6, 12, 13, 15, 16]


def test_split_frames_rejects_partial() -> None:
    with pytest.raises(ValueError):
        split_frames([1, 2, 3])


def test_float_to_s16le_clips_and_rounds(torch: ModuleType) -> None:
    pcm = float_to_pcm16(torch.tensor([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0]))
    assert np.frombuffer(pcm, "<i2").tolist() == [-32767, -32767, 0, 16384, 32767, 32767]


# ---------------------------------------------------------------------------- loader


@pytest.fixture(scope="module")
def snac_dir(tmp_path_factory: pytest.TempPathFactory, torch: ModuleType) -> Path:
    return write_snac_checkpoint(tmp_path_factory.mktemp("snac"), legacy_keys=True)


@pytest.fixture(scope="module")
def model(snac_dir: Path) -> object:
    return load_snac(snac_dir, "cpu")


@pytest.fixture(scope="module")
def quiet_model(tmp_path_factory: pytest.TempPathFactory, torch: ModuleType) -> object:
    """Noise injection off, so equal inputs decode to equal audio."""
    path = write_snac_checkpoint(tmp_path_factory.mktemp("snac_quiet"), silent_noise=True,
                                 legacy_keys=False)
    return load_snac(path, None)


def test_loader_folds_weight_norm_and_matches_checkpoint(model: object, snac_dir: Path,
                                                          torch: ModuleType) -> None:
    from torch.nn.utils import parametrize

    modules = list(model.modules())  # type: ignore[attr-defined]
    assert not any(parametrize.is_parametrized(m) for m in modules)
    assert not model.training  # type: ignore[attr-defined]
    assert next(model.parameters()).device.type == "cpu"  # type: ignore[attr-defined]
    # the folded weight equals g * v / |v| from the (legacy-named) checkpoint
    state = torch.load(snac_dir / "pytorch_model.bin", weights_only=True)
    g = state["decoder.model.1.weight_g"]
    v = state["decoder.model.1.weight_v"]
    expected = g * v / v.norm(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(model.decoder.model[1].weight, expected)  # type: ignore[attr-defined]


def test_loader_picks_cpu_without_cuda(quiet_model: object, torch: ModuleType) -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(quiet_model.parameters()).device.type == expected  # type: ignore[attr-defined]


def test_loader_errors(tmp_path: Path, snac_dir: Path, torch: ModuleType) -> None:
    with pytest.raises(FileNotFoundError):
        load_snac(tmp_path)
    (tmp_path / "config.json").write_text((snac_dir / "config.json").read_text())
    with pytest.raises(FileNotFoundError):
        load_snac(tmp_path)
    torch.save({"nonsense": torch.zeros(1)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError):
        load_snac(tmp_path)


# ---------------------------------------------------------------------------- decoder


def stream_decode(model: object, frames: list[tuple[int, ...]], *, one_by_one: bool,
                  **kwargs: object) -> tuple[bytes, StreamingSnacDecoder]:
    decoder = StreamingSnacDecoder(model, **kwargs)  # type: ignore[arg-type]
    out = bytearray()
    if one_by_one:
        for frame in frames:
            decoder.push(frame)
            out += decoder.decode_ready()
    else:
        for frame in frames:
            decoder.push(frame)
        out += decoder.decode_ready()
    out += decoder.flush()
    return bytes(out), decoder


@pytest.mark.parametrize("count", [1, 2, 3, 5, 13])
@pytest.mark.parametrize("one_by_one", [True, False])
def test_every_frame_becomes_2048_samples(model: object, count: int, one_by_one: bool) -> None:
    pcm, decoder = stream_decode(model, random_frames(count, seed=count), one_by_one=one_by_one)
    assert len(pcm) == 2 * count * SAMPLES_PER_FRAME
    assert decoder.samples_emitted == count * SAMPLES_PER_FRAME


def test_first_frame_is_emitted_once_it_has_right_context(model: object) -> None:
    decoder = StreamingSnacDecoder(model)  # type: ignore[arg-type]
    frames = random_frames(4, seed=7)
    decoder.push(frames[0])
    decoder.push(frames[1])
    assert decoder.ready_samples == 0 and decoder.decode_ready() == b""
    decoder.push(frames[2])
    assert len(decoder.decode_ready()) == 2 * SAMPLES_PER_FRAME  # frame 0, with 2 frames ahead
    decoder.push(frames[3])
    assert len(decoder.decode_ready()) == 2 * SAMPLES_PER_FRAME  # frame 1, Orpheus' own slice
    assert len(decoder.flush()) == 2 * 2 * SAMPLES_PER_FRAME  # frames 2 and 3, not lost


@pytest.mark.parametrize("lookahead,first_at", [(0, 1), (1, 2), (2, 3), (None, 3)])
def test_start_lookahead_sets_when_the_first_frame_leaves(model: object, lookahead: int | None,
                                                          first_at: int) -> None:
    decoder = StreamingSnacDecoder(model, start_lookahead_frames=lookahead)  # type: ignore[arg-type]
    out = bytearray()
    for i, frame in enumerate(random_frames(6, seed=11), start=1):
        decoder.push(frame)
        pcm = decoder.decode_ready()
        if i < first_at:
            assert pcm == b""
        elif i == first_at:
            assert len(pcm) == 2 * SAMPLES_PER_FRAME  # frame 0 alone
        out += pcm
    out += decoder.flush()
    assert len(out) == 2 * 6 * SAMPLES_PER_FRAME


def test_window_grows_when_frames_pile_up(model: object) -> None:
    _, one_by_one = stream_decode(model, random_frames(13), one_by_one=True)
    _, at_once = stream_decode(model, random_frames(13), one_by_one=False)
    assert one_by_one.decode_calls == 12  # frames 0..10 one per push, then the 2-frame tail
    assert at_once.decode_calls == 2  # 11 frames in one window, then the tail


def test_max_window_bounds_each_decode(model: object) -> None:
    decoder = StreamingSnacDecoder(model, max_window_frames=6)  # type: ignore[arg-type]
    for frame in random_frames(12, seed=8):
        decoder.push(frame)
    first = decoder.decode_ready()
    assert len(first) == 2 * 4 * SAMPLES_PER_FRAME  # frames 0-3: window 0..5 minus 2 ahead
    capped = decoder.decode_ready(max_frames=2)
    assert len(capped) == 2 * 2 * SAMPLES_PER_FRAME
    rest = decoder.decode_ready() + decoder.flush()
    assert decoder.samples_emitted == 12 * SAMPLES_PER_FRAME
    assert len(first + capped + rest) == 2 * 12 * SAMPLES_PER_FRAME


def _as_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, "<i2").astype(np.float32) / 32767.0


def _full_decode(model: object, frames: list[tuple[int, ...]]) -> np.ndarray:
    import torch

    coarse, middle, fine = frames_to_codebooks(frames)
    device = next(model.parameters()).device  # type: ignore[attr-defined]
    codes = [torch.tensor(c, device=device).unsqueeze(0) for c in (coarse, middle, fine)]
    with torch.inference_mode():
        return model.decode(codes)[0, 0].cpu().numpy()  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize("one_by_one", [True, False])
@pytest.mark.parametrize("kept_slice", [(2048, 4096), (3072, 5120)])
def test_streamed_audio_matches_one_whole_decode(quiet_model: object, one_by_one: bool,
                                                 kept_slice: tuple[int, int]) -> None:
    """Every emitted sample had context on both sides, so the stream equals (within rounding
    and SNAC's finite receptive field) decoding the whole utterance at once."""
    frames = random_frames(9, seed=9)
    reference = _full_decode(quiet_model, frames)
    pcm, _ = stream_decode(quiet_model, frames, one_by_one=one_by_one, kept_slice=kept_slice)
    streamed = _as_float(pcm)
    assert streamed.shape == reference.shape
    scale = float(np.abs(reference).max())
    assert float(np.abs(streamed - reference).max()) < 0.1 * scale
    # and context matters: one frame per decode, no context, is far from the reference
    naive, _ = stream_decode(quiet_model, frames, one_by_one=True, window_frames=1,
                             kept_slice=(0, 2048))
    assert float(np.abs(_as_float(naive) - reference).max()) > 0.3 * scale


def test_one_frame_start_lookahead_stays_close(quiet_model: object) -> None:
    """Low latency's first frame (one frame of lookahead) is still near the whole decode;
    with no lookahead at all it is not."""
    frames = random_frames(6, seed=10)
    reference = _full_decode(quiet_model, frames)
    scale = float(np.abs(reference).max())
    errors = {}
    for lookahead in (0, 1):
        pcm, _ = stream_decode(quiet_model, frames, one_by_one=True,
                               start_lookahead_frames=lookahead)
        first = _as_float(pcm)[:SAMPLES_PER_FRAME]
        errors[lookahead] = float(np.abs(first - reference[:SAMPLES_PER_FRAME]).max()) / scale
    assert errors[1] < 0.1 < errors[0], errors


def test_bad_arguments(model: object) -> None:
    with pytest.raises(ValueError):
        StreamingSnacDecoder(model, window_frames=4, kept_slice=(0, 9000))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        StreamingSnacDecoder(model, kept_slice=(4096, 2048))  # type: ignore[arg-type]
    decoder = StreamingSnacDecoder(model)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        decoder.push((1, 2, 3))
    with pytest.raises(ValueError):
        decoder.push((0, 0, 0, 0, 0, 0, 4096))
    assert decoder.flush() == b""
