"""Packages `make test` installs on Python 3.11 only, and the one place their absence is a skip.

The `snac` extra (torch CPU, snac, onnxscript): the machine holds a CPU wheel of torch for 3.11,
and for 3.10 PyPI offers only the multi-GB CUDA build. `pipecat-ai` 1.x needs 3.11. On 3.10 a
test that needs one of them skips, naming what is missing; on 3.11 it always runs, and a missing
package fails it.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import pytest

SNAC_EXTRA = "the `snac` extra (torch, snac; PyPI has no CPU-only torch for Python 3.10)"
PIPECAT = "pipecat-ai (1.x needs Python 3.11)"


def import_or_skip_on_310(module: str, what: str) -> ModuleType:
    """Import `module`; on Python 3.10, where `make test` does not install `what`, skip the
    calling test (or module) if it is missing."""
    if sys.version_info < (3, 11):
        return pytest.importorskip(
            module, reason=f"needs {what}, which `make test` installs on Python 3.11 only: "
                           "this test runs on 3.11")
    return importlib.import_module(module)


def torch_or_skip() -> ModuleType:
    """torch from the `snac` extra, on one thread (2 shared cores: no OpenMP oversubscription)."""
    import_or_skip_on_310("snac", SNAC_EXTRA)
    torch = import_or_skip_on_310("torch", SNAC_EXTRA)
    torch.set_num_threads(1)
    return torch
