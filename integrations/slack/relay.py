"""Drains `desk_outbox` into Slack, in order per conversation, retrying with backoff.

A notice is deleted only once Slack has taken it; a Slack outage delays threads
and messages, it never drops them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import timedelta

import sqlalchemy as sa
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.ingest import now
from bot.partitions import Owned, everything, only_owned
from bot.sender import idle_time, wait_for_event
from bot.storage.db import Database
from bot.storage.tables import desk_outbox
from integrations.slack.desk import SlackDesk

log = logging.getLogger(__name__)

BATCH = 50
MAX_BACKOFF = 300.0


class DeskRelay:
    def __init__(
        self, db: Database, desk: SlackDesk, wake: asyncio.Event, owned: Owned = everything
    ) -> None:
        self._owned = owned
        self._db = db
        self._desk = desk
        self._wake = wake

    async def run(self) -> None:
        while True:
            try:
                done = await self.deliver_due()
            except Exception:
                log.exception("desk relay round failed; trying again shortly")
                done = 0
            if done == 0:
                idle = await idle_time(self._db, desk_outbox.c.next_attempt_at)
                await wait_for_event(self._wake, idle)

    async def deliver_due(self) -> int:
        """Deliver one batch of due notices; returns how many were delivered."""
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(desk_outbox)
                    .where(desk_outbox.c.next_attempt_at <= now())
                    .where(only_owned(desk_outbox.c.conversation_id, self._owned))
                    .order_by(desk_outbox.c.id)
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
                await self._desk.deliver(row.kind, row.conversation_id, row.message_id, row.note)
            except (TimeoutError, SlackApiError, SlackClientError, OSError) as exc:
                await self._retry_later(row, exc)
                return n  # later notices of this conversation wait for this one
            async with self._db.write() as conn:
                await conn.execute(desk_outbox.delete().where(desk_outbox.c.id == row.id))
        return len(rows)

    async def _retry_later(self, row: sa.Row, exc: Exception) -> None:
        delay = min(0.5 * 2.0**row.attempts, MAX_BACKOFF)
        response = getattr(exc, "response", None)
        if response is not None and response.status_code == 429:
            delay = max(delay, float(response.headers.get("Retry-After", delay)))
        log.warning(
            "Slack did not take a desk notice; retrying",
            extra={
                "conversation": row.conversation_id,
                "kind": row.kind,
                "attempt": row.attempts + 1,
                "retry_in": delay,
                "error": str(exc)[:200],
            },
        )
        async with self._db.write() as conn:
            await conn.execute(
                desk_outbox.update()
                .where(desk_outbox.c.id == row.id)
                .values(
                    attempts=row.attempts + 1,
                    next_attempt_at=now() + timedelta(seconds=delay),
                    last_error=str(exc)[:500],
                )
            )
