"""What automations hear of: events written as due-now timers, and `no_reply` deadlines.

People and flows change contacts and conversations in many places (the API, Slack,
a survey's end); each change calls `fire` in its own transaction, so the event is
kept exactly when the change is. The automations' clock turns due timers into work
items in the conversation's queue, where the worker runs the automations in order.

`fire` writes nothing when no enabled automation of the space listens for the
trigger: an unused trigger costs one indexed read. The triggers that outgoing webhooks
hear too (`WEBHOOK_EVENTS`) are told to them as well, whatever the depth.

Loops: an event caused by an automation's action carries `depth` 1 and may trigger
other automations; what *their* actions cause (depth 2) triggers none. So a tag added
by a rule can start one more rule, never a chain.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import now
from bot.errors import InvalidPayload
from bot.storage.tables import automation_timers, automations, conversations, spaces
from bot.workspace.events import emit

MAX_DEPTH = 1  # events of depth <= MAX_DEPTH run automations
# the triggers that are webhook events too, by their names there
WEBHOOK_EVENTS = {
    "conversation_closed": "conversation.closed",
    "conversation_assigned": "conversation.assigned",
    "handed_over": "conversation.handed_over",
    "field_changed": "contact.updated",
    "tag_added": "contact.updated",
    "tag_removed": "contact.updated",
}
DURATION = re.compile(r"^(-?)(\d{1,6})([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str, signed: bool = False) -> timedelta:
    """`30s`, `15m`, `2h`, `3d`, `1w` (and `-3d` where `signed`)."""
    match = DURATION.match(str(text).strip())
    if not match or (match.group(1) and not signed):
        example = "-3d or 2h" if signed else "30s, 15m, 2h, 3d or 1w"
        raise InvalidPayload(f"{text!r} is not a duration; write e.g. {example}")
    amount = timedelta(**{UNITS[match.group(3)]: int(match.group(2))})
    return -amount if match.group(1) else amount


def listening(space_id: int, trigger: str) -> sa.Select[Any]:
    """The space's enabled automations on `trigger`: (id, definition)."""
    return (
        sa.select(automations.c.id, automations.c.definition)
        .where(automations.c.space_id == space_id)
        .where(automations.c.trigger == trigger)
        .where(automations.c.enabled == 1)
    )


async def fire(
    conn: AsyncConnection,
    space_id: int,
    trigger: str,
    *,
    contact_id: int,
    conversation_id: int | None = None,
    depth: int = 0,
    **attrs: Any,
) -> bool:
    """Queue `trigger` for the space's automations; False when none listens (or the
    event comes from too deep a chain of automations)."""
    event_type = WEBHOOK_EVENTS.get(trigger)
    if event_type is not None:
        data = {"contact_id": contact_id, "conversation_id": conversation_id, **attrs}
        if event_type == "contact.updated":
            data["change"] = trigger
        await emit(conn, space_id, event_type, data, conversation_id)
    if depth > MAX_DEPTH:
        return False
    found = (await conn.execute(listening(space_id, trigger).limit(1))).first()
    if found is None:
        return False
    await conn.execute(
        automation_timers.insert().values(
            space_id=space_id,
            kind="event",
            contact_id=contact_id,
            conversation_id=conversation_id,
            due_at=now(),
            payload={"trigger": trigger, "depth": depth, "attrs": attrs},
        )
    )
    return True


async def changed(conn: AsyncConnection, space_id: int) -> None:
    """The space's automations (or a field, team or survey they may name) changed: the
    workers compile them again and check what they refer to."""
    await conn.execute(
        spaces.update()
        .where(spaces.c.id == space_id)
        .values(automations_version=spaces.c.automations_version + 1)
    )


def no_reply_key(automation_id: int, conversation_id: int) -> str:
    return f"no_reply:{automation_id}:{conversation_id}"


async def arm_no_reply(
    conn: AsyncConnection,
    conversation: Any,
    waits_for: str,
    rules: list[tuple[int, timedelta]],
    at: datetime,
    restart: bool,
) -> None:
    """Start the `no_reply` deadlines of `rules` (automation id, after) that wait for
    `waits_for` (`contact` or `agent`) to answer; `restart` moves a pending one (we wrote
    again: count from our last message), else the first unanswered message counts."""
    if not rules:
        return
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    insert = dialect.insert(automation_timers)
    rows = [
        {
            "space_id": conversation.space_id,
            "automation_id": automation_id,
            "kind": "no_reply",
            "contact_id": conversation.contact_id,
            "conversation_id": conversation.id,
            "due_at": at + after,
            "payload": {"waits_for": waits_for},
            "key": no_reply_key(automation_id, conversation.id),
        }
        for automation_id, after in rules
    ]
    if restart:
        statement = insert.on_conflict_do_update(
            index_elements=["key"], set_={"due_at": insert.excluded.due_at}
        )
    else:
        statement = insert.on_conflict_do_nothing(index_elements=["key"])
    await conn.execute(statement, rows)


async def cancel_no_reply(conn: AsyncConnection, conversation_id: int, waits_for: str) -> None:
    """Who they waited for has answered."""
    timers = automation_timers.c
    await conn.execute(
        automation_timers.delete()
        .where(timers.conversation_id == conversation_id, timers.kind == "no_reply")
        .where(timers.payload["waits_for"].as_string() == waits_for)
    )


async def no_reply_rules(conn: AsyncConnection, space_id: int, waits_for: str) -> list[Any]:
    """The space's enabled `no_reply` automations waiting for `waits_for`: (id, after)."""
    rows = (await conn.execute(listening(space_id, "no_reply"))).all()
    return [
        (row.id, parse_duration(row.definition["trigger"]["after"]))
        for row in rows
        if row.definition["trigger"].get("from", "contact") == waits_for
    ]


async def we_wrote(conn: AsyncConnection, conversation_id: int, by_person: bool) -> None:
    """We wrote to the contact (a person if `by_person`, else a flow or broadcast): the
    `from: agent` deadlines end if a person answered, `from: contact` ones start."""
    row = (
        await conn.execute(
            sa.select(
                conversations.c.id, conversations.c.space_id, conversations.c.contact_id
            ).where(conversations.c.id == conversation_id)
        )
    ).first()
    if row is None:
        return
    if by_person:
        await cancel_no_reply(conn, conversation_id, "agent")
    rules = await no_reply_rules(conn, row.space_id, "contact")
    await arm_no_reply(conn, row, "contact", rules, now(), restart=True)
