"""What outgoing webhooks hear: events written in the commit that made them happen.

An event is a `webhook_events` row (the outbox); the relay (`bot.delivery.webhooks`)
turns it into one delivery per subscription that hears it. Nothing is written for a
space whose subscriptions do not hear the event: the hot path (ingest, sends) asks
`Topics`, kept in memory, and the rest (`emit`) one indexed read in its transaction.

A flow's `webhook:` end action and an automation's `webhook` action are deliveries of
their own to their own URL (`post`), through the same relay.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import iso, now
from bot.storage.db import Database
from bot.storage.tables import webhook_deliveries, webhook_events, webhooks

log = logging.getLogger(__name__)

# the names are the contract with receivers
EVENTS = (
    "message.received",
    "message.sent",
    "message.status",
    "conversation.opened",
    "conversation.handed_over",
    "conversation.assigned",
    "conversation.closed",
    "contact.created",
    "contact.updated",
    "contact.merged",
    "survey.completed",
    "broadcast.completed",
    "automation.webhook",
)
EVERYTHING = "*"
GIVE_UP = timedelta(days=1)  # a delivery not taken within a day has failed
REFRESH = 1.0  # seconds: how soon a subscription made by another process is heard

_HEARD = (
    sa.select(webhooks.c.events)
    .where(webhooks.c.space_id == sa.bindparam("space_id"))
    .where(webhooks.c.enabled == 1)
)


def hears(events: Iterable[str], event_type: str) -> bool:
    return any(e in (event_type, EVERYTHING) for e in events)


def message_id() -> str:
    """A `webhook-id`: unique per event, the same on every retry of it."""
    return "msg_" + secrets.token_hex(12)


class Topics:
    """Which events each space's enabled subscriptions hear, kept in memory: the hot path
    asks without a query. Read again every `REFRESH` seconds, and at once when this
    process changes a subscription (`refresh`)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._by_space: dict[int, frozenset[str]] = {}
        self._heard: frozenset[str] = frozenset()

    def wants(self, space_id: int, event_type: str) -> bool:
        events = self._by_space.get(space_id)
        return events is not None and (event_type in events or EVERYTHING in events)

    def anyone_wants(self, event_type: str) -> bool:
        return event_type in self._heard or EVERYTHING in self._heard

    async def refresh(self) -> None:
        by_space: dict[int, set[str]] = {}
        async with self._db.glance() as conn:
            rows = await conn.execute(
                sa.select(webhooks.c.space_id, webhooks.c.events).where(webhooks.c.enabled == 1)
            )
            for space_id, events in rows:
                by_space.setdefault(space_id, set()).update(events)
        self._by_space = {space: frozenset(events) for space, events in by_space.items()}
        self._heard = frozenset().union(*self._by_space.values())

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # the database is briefly away; the last reading stands
                log.warning("could not read the webhook subscriptions", exc_info=True)
            await asyncio.sleep(REFRESH)


def event_row(
    space_id: int, event_type: str, data: Mapping[str, Any], conversation_id: int | None = None
) -> dict[str, Any]:
    return {
        "space_id": space_id,
        "type": event_type,
        "conversation_id": conversation_id,
        "data": dict(data),
        "created_at": now(),
    }


async def emit(
    conn: AsyncConnection,
    space_id: int,
    event_type: str,
    data: Mapping[str, Any],
    conversation_id: int | None = None,
) -> bool:
    """Write the event if a subscription of the space hears it; False if none does."""
    heard = (await conn.execute(_HEARD, {"space_id": space_id})).scalars()
    if not any(hears(events, event_type) for events in heard):
        return False
    await conn.execute(
        webhook_events.insert().values(event_row(space_id, event_type, data, conversation_id))
    )
    return True


def envelope(event_type: str, at: datetime, data: Any) -> dict[str, Any]:
    """The body a subscription receives."""
    return {"type": event_type, "timestamp": iso(at), "data": data}


def owed(
    space_id: int,
    what: str,
    body: Mapping[str, Any],
    conversation_id: int | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """A delivery row, due now, given up a day later (add its webhook or URL, and lane)."""
    at = at or now()
    return {
        "space_id": space_id,
        "message_id": message_id(),
        "type": what,
        "conversation_id": conversation_id,
        "body": dict(body),
        "log": [],
        "next_attempt_at": at,
        "give_up_at": at + GIVE_UP,
        "created_at": at,
    }


async def post(
    conn: AsyncConnection,
    space_id: int,
    url: str,
    body: Mapping[str, Any],
    *,
    what: str,
    conversation_id: int | None = None,
) -> None:
    """Owe `url` a POST of `body` (a flow's or automation's own webhook), unsigned: no
    subscription, no secret. `what` names it in the deliveries log."""
    # one order for a conversation's own posts, whatever their URLs
    lane = None if conversation_id is None else f"own:{conversation_id}"
    row = owed(space_id, what, body, conversation_id) | {"url": url, "lane": lane}
    await conn.execute(webhook_deliveries.insert().values(row))
