"""The virtual clock reaches timers that fall between two of its ticks (looptime < 0.8 froze)."""

from __future__ import annotations

import asyncio

import pytest

from tests import looptime_compat

pytestmark = pytest.mark.looptime

looptime_compat.install()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("delay_s", [0.1 / 1.2, 1 / 3, 0.0000004, 2.0000007])
async def test_a_sleep_off_the_tick_grid_ends(delay_s):
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.sleep(delay_s)
    waited = loop.time() - t0
    assert delay_s <= waited <= delay_s + 2e-6  # at most a tick late


@pytest.mark.timeout(30)
async def test_many_odd_sleeps_in_a_row_keep_exact_time():
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for _ in range(1000):
        await asyncio.sleep(0.1 / 1.2)
    assert 1000 * 0.1 / 1.2 <= loop.time() - t0 <= 1000 * (0.1 / 1.2 + 1e-6) + 1e-9
