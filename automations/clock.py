"""The automations' clock: due timers become work items, once, whoever looks.

Timers are rows (`automation_timers`) with a due time, so they survive a restart or a
`kill -9`, and a timer due while the hub was down fires when it starts. Each round
deletes the due rows it takes and queues their work items in the same transaction:
on PostgreSQL, rows another worker's round holds are skipped (`FOR UPDATE SKIP
LOCKED`), on SQLite there is one writer; either way a timer fires once however many
workers run the clock, and the work item commits its effects once.

- `event`, `no_reply`, `wait`: one work item in the conversation (an event about a
  contact goes to its latest conversation; a contact that never wrote has none, and
  nothing runs).
- `schedule`: one work item for each contact of the automation's view; the next round
  is armed in the same commit. `date_field`: one for each contact whose date, moved by
  the offset, is today in the space's time zone; then tomorrow's round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from croniter import croniter
from sqlalchemy.ext.asyncio import AsyncConnection

from automations.definition import Automation, OnDate, OnSchedule
from bot.clock import db_datetime, now
from bot.storage.db import Database
from bot.storage.tables import (
    automation_timers,
    automations,
    contacts,
    conversations,
    field_definitions,
    field_values,
    spaces,
    views,
    work_items,
)
from bot.workspace.contacts import field_defs
from bot.workspace.filters import Group, compile_filter
from bot.workspace.triggers import parse_duration

log = logging.getLogger(__name__)

BATCH = 500  # timers taken by one round
EVERY = 1.0  # seconds between rounds when nothing is due

Announce = Callable[[Iterable[int]], Awaitable[None]]


class AutomationClock:
    def __init__(self, db: Database, announce: Announce, every: float = EVERY) -> None:
        self._db = db
        self._announce = announce
        self._every = every

    async def run(self) -> None:
        while True:
            try:
                fired = await self.tick()
            except Exception:
                log.exception("automation clock round failed; trying again shortly")
                fired = 0
            if fired < BATCH:  # a full round: more may be due already
                await asyncio.sleep(self._every)

    async def tick(self, at: datetime | None = None) -> int:
        """Fire what is due at `at` (default: now); how many timers fired."""
        at = at or now()
        timers = automation_timers.c
        due = sa.select(timers.id).where(timers.due_at <= at).order_by(timers.due_at).limit(BATCH)
        if not self._db.is_sqlite:
            due = due.with_for_update(skip_locked=True)
        async with self._db.write() as conn:
            rows = (
                await conn.execute(
                    automation_timers.delete()
                    .where(timers.id.in_(due.scalar_subquery()))
                    .returning(*automation_timers.c)
                )
            ).all()
            items: list[dict[str, Any]] = []
            for row in rows:
                items.extend(await self._items(conn, row, at))
            if items:
                await conn.execute(work_items.insert(), items)
        if items:
            await self._announce({item["conversation_id"] for item in items})
        if rows:
            log.info("automation timers fired", extra={"timers": len(rows), "work": len(items)})
        return len(rows)

    async def _items(self, conn: AsyncConnection, row: Any, at: datetime) -> list[dict[str, Any]]:
        payload = row.payload or {}
        if row.kind == "wait":
            work = {"automation": payload}
        elif row.kind == "event":
            work = {"automation": {**payload, "on": payload["trigger"]}}
        else:
            work = {"automation": {"on": row.kind, "automation_id": row.automation_id}}
        if row.kind in ("schedule", "date_field"):
            return await self._round(conn, row, work, at)
        conversation_id = row.conversation_id or await _latest(conn, row.contact_id)
        if conversation_id is None:
            log.debug(
                "no conversation to run automations in",
                extra={"contact": row.contact_id},
            )
            return []
        return [{"conversation_id": conversation_id, "payload": work, "created_at": at}]

    async def _round(
        self, conn: AsyncConnection, row: Any, work: dict[str, Any], at: datetime
    ) -> list[dict[str, Any]]:
        """The contacts of a `schedule` or `date_field` round, and the next round."""
        found = (
            await conn.execute(
                sa.select(automations.c.definition, automations.c.enabled, spaces.c.timezone)
                .join(spaces, spaces.c.id == automations.c.space_id)
                .where(automations.c.id == row.automation_id)
            )
        ).first()
        if found is None or not found.enabled:
            return []
        automation = Automation.model_validate(found.definition)
        trigger = automation.trigger
        zone = ZoneInfo(found.timezone or "UTC")
        if isinstance(trigger, OnSchedule):
            who = await _view_contacts(conn, row.space_id, trigger.view_id)
        else:
            assert isinstance(trigger, OnDate)
            day = _local(db_datetime(row.due_at) or at, zone).date()  # the round's day
            who = await _dated_contacts(conn, row.space_id, trigger, day)
        await arm(conn, row.space_id, row.automation_id, automation, found.timezone, at)
        latest = (
            sa.select(conversations.c.contact_id, sa.func.max(conversations.c.id))
            .where(conversations.c.contact_id.in_(who))
            .group_by(conversations.c.contact_id)
        )
        return [
            {"conversation_id": conversation_id, "payload": work, "created_at": at}
            for _, conversation_id in (await conn.execute(latest)).all()
        ]


async def arm(
    conn: AsyncConnection,
    space_id: int,
    automation_id: int,
    automation: Automation,
    timezone: str | None = None,
    at: datetime | None = None,
) -> None:
    """(Re)arm the next round of a `schedule` or `date_field` automation after `at`; for
    others, nothing. Called when it is saved or enabled, and by each round (which knows
    the space's time zone; else it is read)."""
    trigger = automation.trigger
    if not isinstance(trigger, OnSchedule | OnDate):
        return
    if timezone is None:
        timezone = (
            await conn.execute(sa.select(spaces.c.timezone).where(spaces.c.id == space_id))
        ).scalar()
    zone = ZoneInfo(timezone or "UTC")
    local = _local(at or now(), zone)
    if isinstance(trigger, OnSchedule):
        following = croniter(trigger.cron, local).get_next(datetime)
    else:
        hour, minute = (int(p) for p in trigger.at.split(":"))
        following = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if following <= local:
            following += timedelta(days=1)
    due = following.astimezone(UTC).replace(tzinfo=None)
    key = f"{trigger.on}:{automation_id}"
    await conn.execute(automation_timers.delete().where(automation_timers.c.key == key))
    await conn.execute(
        automation_timers.insert().values(
            space_id=space_id,
            automation_id=automation_id,
            kind=trigger.on,
            due_at=due,
            payload={},
            key=key,
        )
    )


def _local(at: datetime, zone: ZoneInfo) -> datetime:
    return at.replace(tzinfo=UTC).astimezone(zone)


async def _latest(conn: AsyncConnection, contact_id: int | None) -> int | None:
    if contact_id is None:
        return None
    return (
        await conn.execute(
            sa.select(sa.func.max(conversations.c.id)).where(
                conversations.c.contact_id == contact_id
            )
        )
    ).scalar()


async def _view_contacts(conn: AsyncConnection, space_id: int, view_id: int) -> list[int]:
    group = (
        await conn.execute(
            sa.select(views.c.filter).where(views.c.id == view_id, views.c.space_id == space_id)
        )
    ).scalar()
    if group is None:
        return []
    where = compile_filter(
        Group.model_validate(group), space_id, await field_defs(conn, space_id), for_page=False
    )
    return list((await conn.execute(sa.select(contacts.c.id).where(where))).scalars())


async def _dated_contacts(
    conn: AsyncConnection, space_id: int, trigger: OnDate, day: Any
) -> list[int]:
    """Contacts whose field's date plus the offset is `day`."""
    target = day - parse_duration(trigger.offset, signed=True)
    start = datetime(target.year, target.month, target.day)
    field = (
        sa.select(field_definitions.c.id)
        .where(field_definitions.c.space_id == space_id)
        .where(field_definitions.c.key == trigger.field)
        .scalar_subquery()
    )
    query = (
        sa.select(field_values.c.contact_id)
        .where(field_values.c.field_id == field)
        .where(field_values.c.value_date >= start)
        .where(field_values.c.value_date < start + timedelta(days=1))
    )
    return list((await conn.execute(query)).scalars())
