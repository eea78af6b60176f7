"""One POST of a webhook delivery, and what came of it: the answer's status, how long it
took, its first bytes; never a redirect followed, never more than 64 KiB read, never
longer than 10 s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from bot.delivery.guard import Refused, check_literal
from bot.workspace.events import GIVE_UP

TIMEOUT = aiohttp.ClientTimeout(total=10)
MAX_RESPONSE = 64 * 1024  # read of an answer, at most
KEPT = 500  # characters of an answer kept in the log
RETRIED = frozenset({408, 429})


@dataclass(frozen=True)
class Attempt:
    """One POST and what came of it."""

    delivery: Any  # the row read by `due`
    status: int | None  # none: no answer (refused, unreachable, timed out)
    ms: float
    error: str | None = None
    response: str | None = None
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retried(self) -> bool:
        return self.status is None or self.status >= 500 or self.status in RETRIED

    @property
    def reason(self) -> str:
        if self.status is None:
            return self.error or "no answer"
        return f"answered {self.status}"


async def post(
    http: aiohttp.ClientSession,
    delivery: Any,
    url: str,
    body: str,
    headers: dict[str, str],
    allow_private: bool,
) -> Attempt:
    """POST `body` to `url` (its address checked again); never raises."""
    started = time.perf_counter()

    def took() -> float:
        return (time.perf_counter() - started) * 1000

    try:
        check_literal(url, allow_private)
        async with http.post(
            url, data=body.encode(), headers=headers, allow_redirects=False
        ) as resp:
            first = await _read_at_most(resp.content, MAX_RESPONSE)
            retry_after = seconds(resp.headers.get("Retry-After"), time.time())
            answer = first[:KEPT].decode(errors="replace")
            return Attempt(delivery, resp.status, took(), None, answer, retry_after)
    except Refused as exc:
        return Attempt(delivery, None, took(), f"refused: {exc}")
    except TimeoutError:
        return Attempt(delivery, None, took(), "no answer within 10 s")
    except (aiohttp.ClientError, OSError) as exc:
        return Attempt(delivery, None, took(), f"{type(exc).__name__}: {exc}"[:KEPT])


async def _read_at_most(content: aiohttp.StreamReader, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = await content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def seconds(retry_after: str | None, at: float) -> float | None:
    """`Retry-After` as seconds from `at` (a Unix time): it is seconds or an HTTP date; at
    most a day."""
    if not retry_after:
        return None
    if retry_after.strip().isdigit():
        wait = float(retry_after)
    else:
        try:
            wait = parsedate_to_datetime(retry_after).timestamp() - at
        except (TypeError, ValueError):
            return None
    return min(max(wait, 0.0), GIVE_UP.total_seconds())
