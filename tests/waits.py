"""Waiting for an event instead of sleeping and hoping it happened: a busy machine is slow."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def wait_until(cond: Callable[[], object], timeout_s: float = 10.0, what: str = "") -> None:
    """Until `cond()` is true; fails after `timeout_s` (a bound for a broken mechanism, not a
    timing the test checks)."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"not reached in {timeout_s} s: {what or cond}"
        await asyncio.sleep(0.005)
