"""The hot path goes first: background deliveries take the time it leaves them.

In one process with the ingest and the replies, a relay that sent whenever it had work
would take the event loop from contacts whenever a receiver is fast. So, while the hot
path is at work (`hot()`) and the loop comes back late, background work waits: after a
burst it catches up. However busy the hub, a step waits at most `MOST_ASIDE`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

PROBE = 0.05  # s between looks at the loop
LAG = 0.001  # s late: busy (idle, the loop comes back about 0.4 ms late; under load, 1-20)
STAND_ASIDE = 0.05  # s waited at a time
MOST_ASIDE = 5.0  # s waited at most before a step


class SpareTime:
    def __init__(self, hot: Callable[[], bool]) -> None:
        self._hot = hot
        self.lag = 0.0  # how late the loop came back at the last look

    async def watch(self) -> None:
        """Look at the loop for ever (a background task of whoever waits)."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(PROBE)
            self.lag = loop.time() - started - PROBE

    async def wait(self) -> None:
        """Return when the hot path leaves time (or after MOST_ASIDE)."""
        waited = 0.0
        while self.lag > LAG and self._hot() and waited < MOST_ASIDE:
            await asyncio.sleep(STAND_ASIDE)
            waited += STAND_ASIDE
