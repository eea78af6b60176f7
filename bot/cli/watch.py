"""`broadcasts show --watch`: a progress bar that follows a broadcast until it stops moving.

The bar is tqdm's, as `contacts import` draws it: on standard error and only on a
terminal, so a script or a log gets the final answer alone. Done is every recipient no
longer queued or in flight; the figures beside it are the report's own counts.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

# a broadcast in these states will not move by itself: watching ends
STILL = ("completed", "cancelled", "paused", "draft")
PENDING = ("queued", "sending")
SHOWN = ("queued", "sent", "delivered", "read", "failed", "skipped")
EVERY = 1.0  # seconds between polls


async def watch(
    fetch: Callable[[], Awaitable[Any]],
    *,
    every: float = EVERY,
    out: TextIO | None = None,
    disable: bool | None = None,
) -> Any:
    """Poll `fetch` (the broadcast's GET) until the broadcast is still; its last answer."""
    from tqdm import tqdm

    out = out or sys.stderr
    body = await fetch()
    with tqdm(total=0, unit="recipient", desc=body["name"], file=out, disable=disable) as bar:
        while True:
            _draw(bar, body)
            if body["status"] in STILL:
                break
            await asyncio.sleep(every)
            body = await fetch()
    if body["status"] == "draft":
        print(f"a draft: `chancenter broadcasts start {body['id']}` sends it", file=out)
    return body


def _draw(bar: Any, body: dict[str, Any]) -> None:
    """The bar at the broadcast's counts: the total grows while its segment is planned."""
    counts = body["counts"]
    bar.total = counts["total"]
    bar.n = counts["total"] - sum(counts[status] for status in PENDING)
    figures = ", ".join(f"{status} {counts[status]}" for status in SHOWN)
    bar.set_postfix_str(f"{body['status']}: {figures}", refresh=False)
    bar.refresh()
