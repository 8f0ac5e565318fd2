"""Opt-in: real llama.cpp (llama-cpp-python) serving a tiny random GGUF with Orpheus' tokens.

MORPHEUS_TEST_LLAMACPP=1 turns it on. It installs llama-cpp-python[server] and gguf into this
interpreter when they are missing (llama-cpp-python compiles from source: about 5 minutes),
writes a 16 MB random-weight Llama GGUF whose vocabulary holds every <custom_token_N>, and
streams through the adapter both from `python -m llama_cpp.server` and in-process. A GBNF
grammar (sent through ORPHEUS_EXTRA_BODY) makes the random model emit well-formed frames.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path

import pytest

if os.environ.get("MORPHEUS_TEST_LLAMACPP") != "1":
    pytest.skip("opt-in: set MORPHEUS_TEST_LLAMACPP=1 to build llama-cpp-python (about 5 min) "
                "and run it against a tiny GGUF", allow_module_level=True)

import httpx  # noqa: E402

from adapters.base import TTSInput  # noqa: E402
from adapters.orpheus.adapter import SnacLlamaCppAdapter  # noqa: E402
from adapters.orpheus.tokens import SAMPLES_PER_FRAME  # noqa: E402
from server.config import Settings  # noqa: E402
from tests.extras import torch_or_skip  # noqa: E402
from tests.ports import wait_listening  # noqa: E402
from tests.snac_fixture import write_snac_checkpoint  # noqa: E402

pytestmark = [pytest.mark.llamacpp, pytest.mark.timeout(1800)]

N_CUSTOM = 10 + 7 * 4096  # <custom_token_0> .. <custom_token_28681>
FRAMES = 5


def _ensure_installed() -> None:
    needed = [spec for mod, spec in (("llama_cpp", "llama-cpp-python[server]>=0.3"),
                                     ("gguf", "gguf>=0.10"), ("uvicorn", "uvicorn"))
              if importlib.util.find_spec(mod) is None]
    if needed:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *needed], check=True,
                       timeout=1500)
        importlib.invalidate_caches()


def write_tiny_gguf(path: Path) -> Path:
    """A 2-layer Llama with random weights and an SPM vocabulary: specials, byte fallback,
    and all Orpheus custom tokens as user-defined tokens (rendered as their text)."""
    import gguf
    import numpy as np

    n_embd, n_head, n_head_kv, n_ff, n_layer = 64, 4, 2, 128, 2
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256
    tokens += ["▁", "▁tara", ":"]
    types += [gguf.TokenType.NORMAL] * 3
    tokens += [f"<custom_token_{n}>" for n in range(N_CUSTOM)]
    types += [gguf.TokenType.USER_DEFINED] * N_CUSTOM
    n_vocab = len(tokens)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("orpheus-tiny-random")
    w.add_context_length(2048)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * n_vocab)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)

    rng = np.random.default_rng(0)

    def t(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    w.add_tensor("token_embd.weight", t(n_vocab, n_embd))
    w.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    w.add_tensor("output.weight", t(n_vocab, n_embd))
    kv = n_embd // n_head * n_head_kv
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, np.float32))
        w.add_tensor(f"blk.{i}.attn_q.weight", t(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.attn_k.weight", t(kv, n_embd))
        w.add_tensor(f"blk.{i}.attn_v.weight", t(kv, n_embd))
        w.add_tensor(f"blk.{i}.attn_output.weight", t(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", t(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_up.weight", t(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_down.weight", t(n_embd, n_ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def frame_grammar(frames: int | None) -> str:
    """GBNF for `frames` well-formed Orpheus frames (or any number, if None); each slot may
    use ten codes, enough to make the random model's output decode."""
    slots = [" | ".join(f'"<custom_token_{10 + 4096 * p + c}>"' for c in range(10))
             for p in range(7)]
    root = " ".join(["frame"] * frames) if frames else "frame+"
    rules = [f"root ::= {root}", "frame ::= " + " ".join(f"s{p}" for p in range(7))]
    rules += [f"s{p} ::= {alts}" for p, alts in enumerate(slots)]
    return "\n".join(rules) + "\n"


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _ensure_installed()
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "orpheus-tiny.gguf")


@pytest.fixture(scope="module")
def snac_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch_or_skip()
    return write_snac_checkpoint(tmp_path_factory.mktemp("snac"))


@pytest.fixture(scope="module")
def llama_server(tiny_gguf: Path) -> Iterator[str]:
    proc = subprocess.Popen(  # port 0: uvicorn binds one of the OS's choosing
        [sys.executable, "-m", "llama_cpp.server", "--model", str(tiny_gguf),
         "--host", "127.0.0.1", "--port", "0", "--n_ctx", "2048", "--n_threads", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        try:
            port = wait_listening(proc, timeout_s=60)
        except RuntimeError:
            err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None else ""
            raise RuntimeError(f"llama_cpp.server did not listen: {err[-2000:]}") from None
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"llama_cpp.server did not start: {err[-2000:]}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1/completions"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
async def make(snac_dir: Path) -> AsyncIterator[object]:
    made: list[SnacLlamaCppAdapter] = []

    def build(**options: object) -> SnacLlamaCppAdapter:
        if "orpheus_extra_body" in options:  # the setting is JSON text
            options["orpheus_extra_body"] = json.dumps(options["orpheus_extra_body"])
        adapter = SnacLlamaCppAdapter.from_options(Settings(**{
            "snac_model": str(snac_dir), "snac_device": "cpu", "orpheus_max_tokens": 400,
            "orpheus_timeout_s": 30, **options}).model_dump())
        made.append(adapter)
        return adapter

    yield build
    for adapter in made:
        await adapter.aclose()


async def _samples(adapter: SnacLlamaCppAdapter, req: TTSInput) -> tuple[int, bool]:
    chunks = [c async for c in adapter.synth_stream(req)]
    return sum(c.samples for c in chunks), chunks[-1].is_final


async def test_llama_cpp_server_end_to_end(llama_server: str, make: object) -> None:
    adapter = make(snac_url=llama_server,  # type: ignore[operator]
                   orpheus_extra_body={"grammar": frame_grammar(FRAMES), "seed": 1})
    assert (await adapter.health()).ready
    samples, final = await _samples(adapter, TTSInput(text="Hello there.", voice="tara"))
    assert samples == FRAMES * SAMPLES_PER_FRAME and final


async def test_llama_cpp_server_cancel_frees_the_server(llama_server: str, make: object) -> None:
    endless = make(snac_url=llama_server,  # type: ignore[operator]
                   orpheus_max_tokens=1500, orpheus_extra_body={"grammar": frame_grammar(None)})
    async with aclosing(endless.synth_stream(TTSInput(text="long", low_latency=True))) as s:
        assert (await s.__anext__()).samples > 0
    # llama-cpp-python serves one completion at a time: this only finishes promptly if the
    # cancelled one stopped generating when its connection closed.
    short = make(snac_url=llama_server,  # type: ignore[operator]
                 orpheus_extra_body={"grammar": frame_grammar(2)})
    started = time.monotonic()
    samples, _ = await asyncio.wait_for(_samples(short, TTSInput(text="short")), 20)
    assert samples == 2 * SAMPLES_PER_FRAME
    assert time.monotonic() - started < 10


async def test_in_process_gguf_end_to_end(tiny_gguf: Path, make: object) -> None:
    adapter = make(orpheus_gguf=str(tiny_gguf), parallel_streams=2,  # type: ignore[operator]
                   orpheus_extra_body={"grammar": frame_grammar(FRAMES), "seed": 1})
    health = await adapter.health()
    assert health.ready and health.loader == "llama-cpp-python in-process"
    await adapter.warmup()
    results = await asyncio.gather(_samples(adapter, TTSInput(text="one")),
                                   _samples(adapter, TTSInput(text="two")))
    assert results == [(FRAMES * SAMPLES_PER_FRAME, True)] * 2


async def test_in_process_cancel_then_reuse(tiny_gguf: Path, make: object) -> None:
    adapter = make(orpheus_gguf=str(tiny_gguf), orpheus_max_tokens=1500,  # type: ignore[operator]
                   parallel_streams=1, orpheus_extra_body={"grammar": frame_grammar(None)})
    async with aclosing(adapter.synth_stream(TTSInput(text="long", low_latency=True))) as s:
        assert (await s.__anext__()).samples > 0
    # one context only: the next stream gets it once the cancelled generation has stopped
    started = time.monotonic()
    async with aclosing(adapter.synth_stream(TTSInput(text="again", low_latency=True))) as s:
        first = await asyncio.wait_for(s.__anext__(), 20)
    assert first.samples > 0 and time.monotonic() - started < 10
