"""Drains an outbox table (rows written in the commit that caused them) to somebody
outside: in order per conversation, deleted only once taken, retried with backoff.

An outage delays what is owed, it never drops it. The table needs the columns `id`,
`conversation_id`, `attempts`, `next_attempt_at` and `last_error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from bot.clock import db_datetime, now
from bot.errors import RetryLater
from bot.pipeline.partitions import Owned, everything, only_owned
from bot.storage.db import Database

log = logging.getLogger(__name__)

BATCH = 50
MAX_BACKOFF = 300.0
IDLE_POLL = 5.0  # seconds; catches rows whose retry time has come


class OutboxRelay:
    """`deliver(row)` returns once the receiver took the row, or raises `RetryLater`."""

    def __init__(
        self,
        db: Database,
        table: sa.Table,
        deliver: Callable[[sa.Row], Awaitable[None]],
        what: str,
        owned: Owned = everything,
        wake: asyncio.Event | None = None,
    ) -> None:
        self._db = db
        self._table = table
        self._deliver = deliver
        self._what = what  # for the log: "desk notice", "flow webhook"
        self.owned = owned
        self._wake = wake or asyncio.Event()

    def notify(self) -> None:
        """Something was committed to the outbox: look now, not at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        await drain(
            self._db, self._table.c.next_attempt_at, self._wake, self.deliver_due, self._what
        )

    async def deliver_due(self) -> int:
        """Deliver one batch of due rows; returns how many were delivered."""
        table, at = self._table, now()
        waiting = table.alias("waiting")  # an earlier row of the same conversation, not due
        behind = (
            sa.select(waiting.c.id)
            .where(waiting.c.conversation_id == table.c.conversation_id)
            .where(waiting.c.id < table.c.id)
            .where(waiting.c.next_attempt_at > at)
        )
        async with self._db.glance() as conn:
            rows = (
                await conn.execute(
                    sa.select(table)
                    .where(table.c.next_attempt_at <= at)
                    .where(~behind.exists())
                    .where(only_owned(table.c.conversation_id, self.owned))
                    .order_by(table.c.id)
                    .limit(BATCH)
                )
            ).all()
        by_conversation: dict[int, list[sa.Row]] = defaultdict(list)
        for row in rows:
            by_conversation[row.conversation_id].append(row)
        counts = await asyncio.gather(
            *(self._in_order(group) for group in by_conversation.values())
        )
        return sum(counts)

    async def _in_order(self, rows: list[sa.Row]) -> int:
        for n, row in enumerate(rows):
            try:
                await self._deliver(row)
            except RetryLater as exc:
                await self._retry_later(row, exc)
                return n  # the conversation's later rows wait for this one
            async with self._db.write() as conn:
                await conn.execute(self._table.delete().where(self._table.c.id == row.id))
        return len(rows)

    async def _retry_later(self, row: sa.Row, exc: RetryLater) -> None:
        delay = max(min(0.5 * 2.0**row.attempts, MAX_BACKOFF), exc.after or 0.0)
        log.warning(
            "%s not taken; retrying",
            self._what,
            extra={
                "conversation": row.conversation_id,
                "attempt": row.attempts + 1,
                "retry_in": delay,
                "error": str(exc)[:200],
            },
        )
        async with self._db.write() as conn:
            await conn.execute(
                self._table.update()
                .where(self._table.c.id == row.id)
                .values(
                    attempts=row.attempts + 1,
                    next_attempt_at=now() + timedelta(seconds=delay),
                    last_error=str(exc)[:500],
                )
            )


async def drain(
    db: Database,
    due: Any,
    wake: asyncio.Event,
    round_: Callable[[], Awaitable[int]],
    what: str,
    batch: int | None = None,
) -> None:
    """Run `round_` for ever, the loop of both drainers (the sender, the relays).

    After a round that did nothing, wait for the earliest future retry (rows due now but
    behind a waiting one are not due for us) or a wake, never in a loop of queries; after
    a round short of `batch`, for a wake or the poll; after a full one, go on at once.
    """
    while True:
        try:
            done = await round_()
        except Exception:
            # e.g. the database is briefly unreachable: nothing is lost, rows stay due
            log.exception("%s round failed; trying again shortly", what)
            done = 0
        if done == 0:
            await wait_for_event(wake, await idle_time(db, due, due > now()))
        elif batch is not None and done < batch:
            await wait_for_event(wake, IDLE_POLL)


async def wait_for_event(event: asyncio.Event, seconds: float) -> None:
    """Until `event` is set or `seconds` pass; then clear it.

    Not `asyncio.wait_for`: on Python 3.11 it can swallow a cancellation that arrives as
    the event is set, and a loop that should stop at shutdown then runs on.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    event.clear()


async def idle_time(db: Database, due_column: Any, *where: Any, most: float = IDLE_POLL) -> float:
    """Seconds until the earliest row of an outbox (`where` ...) is due (at most `most`)."""
    try:
        async with db.glance() as conn:
            due = (await conn.execute(sa.select(sa.func.min(due_column)).where(*where))).scalar()
    except Exception:  # the database is briefly away: poll again soon, and say so
        log.warning("could not read when the next row is due", exc_info=True)
        return most
    if due is None:
        return most
    return min(max((db_datetime(due) - now()).total_seconds(), 0.01), most)
