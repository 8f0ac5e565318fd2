"""The ONNX SNAC decoder: `morpheus snac export`, torch vs onnxruntime, and Orpheus with no torch.

The export (about 20 s of CPU) runs once through the CLI and is cached on disk under a key of
everything it depends on (the source files of the CLI, the Orpheus engine package and the
checkpoint recipe; the versions of torch, onnx, onnxscript, snac, ...), so later runs reuse
it; a change to any of them exports again.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest

from adapters.orpheus.tokens import SAMPLES_PER_FRAME
from tests.extras import SNAC_EXTRA, import_or_skip_on_310, torch_or_skip
from tests.snac_fixture import SNAC_24KHZ_CONFIG, random_frames, write_snac_checkpoint

torch = torch_or_skip()
import_or_skip_on_310("onnxscript", SNAC_EXTRA)

REPO = Path(__file__).resolve().parents[1]
SEED = 1234


def _cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "morpheus" / "test-snac-onnx"


# What makes the exported file: the code `morpheus snac export` runs (the CLI, the whole Orpheus
# engine package: loading, the decode module, the export) and the checkpoint's recipe, as files
# (not single functions, which miss what they call), and the packages that trace and write it.
EXPORT_SOURCES = ("server/cli.py", "adapters/orpheus/*.py", "tests/snac_fixture.py")
EXPORT_PACKAGES = ("torch", "onnx", "onnxscript", "snac", "safetensors", "numpy")


def _export_key() -> str:
    from importlib.metadata import PackageNotFoundError, version

    def installed(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:  # optional (safetensors: a .pth checkpoint needs none)
            return "absent"

    h = hashlib.sha256()
    for pattern in EXPORT_SOURCES:
        for path in sorted(REPO.glob(pattern)):
            h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    for package in EXPORT_PACKAGES:
        h.update(f"{package}={installed(package)}\0".encode())
    h.update(f"{sys.version}\0{SEED}\0".encode())
    h.update(json.dumps(SNAC_24KHZ_CONFIG, sort_keys=True).encode())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def quiet_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seeded SNAC with its noise injection zeroed, so decodes are comparable."""
    return write_snac_checkpoint(tmp_path_factory.mktemp("snac_onnx_ckpt"), seed=SEED,
                                 silent_noise=True, legacy_keys=False)


@pytest.fixture(scope="session")
def exported(quiet_checkpoint: Path) -> Path:
    """The decoder exported by `morpheus snac export` (cached per key, see module doc)."""
    out = _cache_dir() / f"snac_decoder-{_export_key()}.onnx"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".partial")
        done = subprocess.run(
            [sys.executable, "-m", "server.cli", "--env-file", "", "snac", "export",
             "--model", str(quiet_checkpoint), "--out", str(tmp)],
            env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
            timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "SNAC_ONNX=" in done.stderr
        tmp.replace(out)
    return out


@pytest.fixture(scope="module")
def torch_runner(quiet_checkpoint: Path):  # noqa: ANN201
    from adapters.orpheus.model import load_snac
    from adapters.orpheus.runtime import TorchSnac

    return TorchSnac(load_snac(quiet_checkpoint, "cpu"))


@pytest.mark.parametrize("batch,frames", [(1, 1), (1, 6), (3, 9), (8, 6)])
def test_torch_and_onnx_agree(exported: Path, torch_runner, batch: int, frames: int) -> None:
    from adapters.orpheus.runtime import OnnxSnac

    ort = OnnxSnac(exported, device="cpu", threads=1)
    codes = np.stack([np.asarray(random_frames(frames, seed=100 + b), dtype=np.int64)
                      for b in range(batch)])
    expected = torch_runner.decode(codes)
    got = ort.decode(codes)
    assert got.shape == expected.shape == (batch, frames * SAMPLES_PER_FRAME)
    assert got.dtype == np.float32
    assert float(np.abs(expected).max()) > 0.01  # real audio, not silence
    assert float(np.abs(got - expected).max()) < 1e-4


def test_the_export_keeps_snacs_noise(exported: Path) -> None:
    """One RandomNormalLike per NoiseBlock (one per decoder block): the noise is in the graph."""
    graph = onnx.load(str(exported)).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("RandomNormalLike") == len(SNAC_24KHZ_CONFIG["decoder_rates"])  # type: ignore[arg-type]
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims[2] == 7 and isinstance(dims[0], str) and isinstance(dims[1], str)  # dynamic


def test_a_wrong_file_is_refused(tmp_path: Path) -> None:
    from adapters.orpheus.runtime import OnnxSnac

    with pytest.raises(FileNotFoundError):
        OnnxSnac(tmp_path / "missing.onnx")


def test_orpheus_on_onnx_never_imports_torch(exported: Path, tmp_path: Path) -> None:
    """A deployment with the ONNX file and no torch: the adapter streams Orpheus end to end
    (llama.cpp-protocol server on 127.0.0.1 -> tokens -> onnxruntime -> PCM) in a process
    where importing torch or snac fails."""
    script = tmp_path / "no_torch.py"
    script.write_text(textwrap.dedent(f"""
        import asyncio, importlib.abc, sys

        class NoTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "snac", "torchaudio"):
                    raise ImportError(name + " is not installed here")
                return None

        sys.meta_path.insert(0, NoTorch())

        from adapters.base import TTSInput
        from adapters.orpheus.adapter import SnacLlamaCppAdapter
        from server.config import Settings
        from tests.llama_protocol_server import LlamaProtocolServer, script_from_tokens
        from tests.snac_fixture import frames_to_token_text, random_frames

        async def main():
            script = script_from_tokens(frames_to_token_text(random_frames(9, seed=3)))
            async with LlamaProtocolServer(script) as server:
                adapter = SnacLlamaCppAdapter.from_options(Settings(
                    snac_url=server.url, snac_onnx={str(exported)!r},
                    snac_device="cpu").model_dump())
                try:
                    health = await adapter.health()
                    assert health.ready, health.reason
                    await adapter.warmup()
                    samples = 0
                    async for chunk in adapter.synth_stream(TTSInput(text="Hello there.")):
                        samples += chunk.samples
                finally:
                    await adapter.aclose()
            import server.app  # the whole server stack imports without torch too
            assert not any(m.split(".")[0] in ("torch", "snac") for m in sys.modules)
            print("samples", samples)

        asyncio.run(main())
    """))
    done = subprocess.run([sys.executable, str(script)], env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"samples {9 * SAMPLES_PER_FRAME}" in done.stdout


async def test_the_adapter_decodes_with_onnx_when_configured(exported: Path) -> None:
    from adapters.base import TTSInput
    from adapters.orpheus.adapter import SnacLlamaCppAdapter
    from server.config import Settings
    from tests.llama_protocol_server import LlamaProtocolServer, script_from_tokens
    from tests.snac_fixture import frames_to_token_text

    script = script_from_tokens(frames_to_token_text(random_frames(5, seed=4)))
    async with LlamaProtocolServer(script) as server:
        adapter = SnacLlamaCppAdapter.from_options(Settings(
            snac_url=server.url, snac_onnx=str(exported), snac_device="cpu",
            snac_threads=1).model_dump())
        try:
            chunks = [c async for c in adapter.synth_stream(TTSInput(text="x"))]
            stats = adapter.decoder_stats()
        finally:
            await adapter.aclose()
    assert sum(c.samples for c in chunks) == 5 * SAMPLES_PER_FRAME
    assert stats is not None and stats.kind == "onnx" and stats.device == "cpu"
    assert not stats.batching and stats.windows >= 1
