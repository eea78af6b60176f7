"""The hot path goes first: background deliveries take the time it leaves them.

In one process with the ingest and the replies, a relay that sent whenever it had work
would take the event loop from contacts whenever a receiver is fast. So the relay works
in steps (a batch of deliveries), and before each, while the hot path is at work
(`hot()`), it looks at the event loop while doing nothing itself: if the loop comes back
late, the hot path is using it, and the step waits. After a burst it catches up. However
busy the hub, a step waits at most `MOST_ASIDE`.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable

PROBE = 0.005  # s: one look at the loop
PROBES = 3  # looks a time; their median counts
LAG = 0.001  # s late: busy (idle, the loop comes back 0.1-0.4 ms late; under load, 1-20)
STAND_ASIDE = 0.05  # s waited at a time
MOST_ASIDE = 5.0  # s waited at most before a step


class SpareTime:
    def __init__(self, hot: Callable[[], bool]) -> None:
        self._hot = hot

    async def wait(self) -> None:
        """Return when the hot path leaves time (or after MOST_ASIDE)."""
        waited = 0.0
        while self._hot() and waited < MOST_ASIDE and await lag() > LAG:
            await asyncio.sleep(STAND_ASIDE)
            waited += STAND_ASIDE + PROBE * PROBES


async def lag() -> float:
    """How late the loop comes back to a timer, lately (the median of a few looks)."""
    loop = asyncio.get_running_loop()
    late = []
    for _ in range(PROBES):
        started = loop.time()
        await asyncio.sleep(PROBE)
        late.append(loop.time() - started - PROBE)
    return statistics.median(late)
