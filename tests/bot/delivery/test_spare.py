"""Background work takes the time the hot path leaves (bot.delivery.spare)."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.delivery import spare
from bot.delivery.spare import SpareTime, lag


async def _busy_loop(until: float) -> None:
    """The hot path at work: the loop comes back late, again and again."""
    while time.monotonic() < until:
        time.sleep(0.005)  # noqa: ASYNC251 - holding the loop is the point
        await asyncio.sleep(0)


async def test_it_waits_while_the_hot_path_keeps_the_loop_busy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(spare, "MOST_ASIDE", 0.6)
    hot = True
    gate = SpareTime(lambda: hot)
    busy = asyncio.create_task(_busy_loop(time.monotonic() + 3))
    await asyncio.sleep(0)
    assert await lag() > spare.LAG
    started = time.monotonic()
    await gate.wait()
    assert time.monotonic() - started >= 0.5  # it stood aside, at most MOST_ASIDE
    hot = False  # the same busy loop, but not the hot path's: no waiting
    started = time.monotonic()
    await gate.wait()
    assert time.monotonic() - started < 0.05
    busy.cancel()


async def test_an_idle_loop_costs_a_look() -> None:
    assert await lag() < spare.LAG
    started = time.monotonic()
    await SpareTime(lambda: True).wait()
    assert time.monotonic() - started < 0.1  # three looks of 5 ms
