"""Background work takes the time the hot path leaves (bot.delivery.spare)."""

from __future__ import annotations

import asyncio
import time

from bot.delivery import spare
from bot.delivery.spare import SpareTime


async def _busy_loop(until: float) -> None:
    """The hot path at work: the loop comes back late, again and again."""
    while time.monotonic() < until:
        time.sleep(0.01)  # noqa: ASYNC251 - holding the loop is the point
        await asyncio.sleep(0)


async def test_it_waits_while_the_hot_path_keeps_the_loop_busy(monkeypatch) -> None:
    monkeypatch.setattr(spare, "MOST_ASIDE", 0.6)
    hot = True
    gate = SpareTime(lambda: hot)
    watching = asyncio.create_task(gate.watch())
    busy = asyncio.create_task(_busy_loop(time.monotonic() + 2))
    await asyncio.sleep(0.2)
    assert gate.lag > spare.LAG
    started = time.monotonic()
    await gate.wait()
    assert time.monotonic() - started >= 0.5  # it stood aside, at most MOST_ASIDE
    hot = False  # the same busy loop, but not the hot path's: no waiting
    started = time.monotonic()
    await gate.wait()
    assert time.monotonic() - started < 0.05
    busy.cancel()
    watching.cancel()


async def test_an_idle_loop_costs_no_wait() -> None:
    gate = SpareTime(lambda: True)
    watching = asyncio.create_task(gate.watch())
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await gate.wait()
    assert time.monotonic() - started < 0.05
    watching.cancel()
