"""Timers on looptime's virtual clock that cannot freeze, on every looptime this suite installs.

looptime keeps its virtual clock as a whole number of ticks (1 µs by default) and advances it by
the time to the next timer rounded to the nearest tick. Before looptime 0.8 (its issue #35), a
timer less than half a tick past a tick is never reached: the step rounds to zero, asyncio sees
the timer still in the future, and the loop spins at 100% CPU forever. Any sleep that is not a
whole number of microseconds does it (`asyncio.sleep(0.1 / 1.2)`: the synthetic engine at
RTF 1.2). looptime 0.8 fixed it but needs Python 3.11, so on 3.10 pip installs 0.7 and every
virtual-clock narration hung.

`install()` backports the effect of that fix: on a looptime loop with compaction on, a timer's
due time is rounded up to the clock's next tick (at most 1 µs later), so the clock always lands
on it. With looptime 0.8 or later it does nothing.
"""

from __future__ import annotations

import asyncio
import math
from importlib.metadata import version
from typing import Any

from packaging.version import Version

FIXED_IN = Version("0.8")


def needs_backport() -> bool:
    return Version(version("looptime")) < FIXED_IN


def install() -> None:
    """Patch looptime's loop class once, if the installed looptime has the freeze."""
    if not needs_backport():
        return
    from looptime._internal.loops import LoopTimeEventLoop

    if getattr(LoopTimeEventLoop, "_morpheus_tick_timers", False):
        return

    def call_at(self: LoopTimeEventLoop, when: float, callback: Any, *args: Any,
                context: Any = None) -> asyncio.TimerHandle:
        if self.looptime_on:
            ticks_per_s = getattr(self, "_LoopTimeEventLoop__resolution_reciprocal", 1_000_000)
            # The small slack keeps a time already on the grid (up to float error) where it is.
            when = math.ceil(when * ticks_per_s - 1e-6) / ticks_per_s
        return super(LoopTimeEventLoop, self).call_at(when, callback, *args, context=context)

    LoopTimeEventLoop.call_at = call_at  # type: ignore[method-assign]
    LoopTimeEventLoop._morpheus_tick_timers = True  # type: ignore[attr-defined]
