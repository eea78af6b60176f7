"""Planning: a started broadcast's segment becomes one recipient row per contact.

The segment is walked by contact id, a page a transaction: 100,000 contacts never sit in
memory at once, the database's writer is never held for long, and each page commits
with the id it reached, so a restart continues after it. Two processes planning the same
broadcast compute the same page; the one whose conditional update finds the page already
taken rolls back, so each contact gets one row.

Who cannot be reached is written down as skipped, with the reason, rather than left out:
the report counts them and the recipients list says why.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import db_datetime, now
from bot.delivery.sender import UNREACHABLE
from bot.model import Reach
from bot.storage.db import Database
from bot.storage.tables import (
    broadcast_recipients,
    broadcasts,
    contacts,
    conversations,
    identities,
    messages,
)
from bot.workspace.contacts import field_defs
from bot.workspace.filters import Group, compile_filter

PAGE = 500

NO_IDENTITY = "no identity on this channel: they never wrote to it"
UNSUBSCRIBED = "unsubscribed: they sent an opt-out keyword (START subscribes again)"
WITH_PERSON = "a person is talking with them"
OUTSIDE_WINDOW = {
    "whatsapp": "outside WhatsApp's 24-hour window, and the message is not a template",
    "messenger": "outside Messenger's 24-hour window, and the broadcast has no message tag",
}
NO_SEGMENT = "it kept no segment when it started"


class _Taken(Exception):
    """Another process planned this page first."""


async def plan_page(db: Database, broadcast_id: int, kind: str, window_hours: int | None) -> bool:
    """Plan the next page of a running broadcast; True when there is no more to plan (the
    whole segment is, or the broadcast is no longer running)."""
    try:
        async with db.write(yielding=True) as conn:  # conversations' writes go first
            return await _page(conn, broadcast_id, kind, window_hours)
    except (_Taken, IntegrityError):  # another process wrote this page first
        return False


async def _page(
    conn: AsyncConnection, broadcast_id: int, kind: str, window_hours: int | None
) -> bool:
    # on PostgreSQL a second planner waits here, then reads how far the first got
    query = sa.select(broadcasts).where(broadcasts.c.id == broadcast_id)
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()
    b = (await conn.execute(query)).one()
    if b.planned or b.status != "running":
        return True
    segment = await _segment(conn, b)
    if segment is None:
        await _finish_planning(conn, b, None, last_error=NO_SEGMENT)
        return True
    after = b.planned_through or 0
    identity = (
        sa.select(sa.func.max(identities.c.id))
        .where(identities.c.contact_id == contacts.c.id)
        .where(identities.c.channel_id == b.channel_id)
        .scalar_subquery()
    )
    page = (
        await conn.execute(
            sa.select(contacts.c.id, contacts.c.unsubscribed_at, identity.label("identity_id"))
            .where(segment)
            .where(contacts.c.id > after)
            .order_by(contacts.c.id)
            .limit(PAGE)
        )
    ).all()
    if page:
        reasons = await _reasons(conn, b, page, kind, window_hours)
        await conn.execute(
            broadcast_recipients.insert(),
            [
                {
                    "broadcast_id": b.id,
                    "contact_id": row.id,
                    "identity_id": row.identity_id,
                    "status": "skipped" if reasons.get(row.id) else "queued",
                    "reason": reasons.get(row.id),
                }
                for row in page
            ],
        )
    done = len(page) < PAGE
    await _finish_planning(conn, b, page[-1].id if page else after, done=done)
    return done


async def _finish_planning(
    conn: AsyncConnection,
    b: Any,
    through: int | None,
    done: bool = True,
    last_error: str | None = None,
) -> None:
    """Record how far planning got, unless another process recorded it first."""
    c = broadcasts.c
    same = (
        c.planned_through.is_(None)
        if b.planned_through is None
        else (c.planned_through == b.planned_through)
    )
    moved = await conn.execute(
        broadcasts.update()
        .where(c.id == b.id, c.planned == 0, same)
        .values(planned_through=through, planned=int(done), last_error=last_error or c.last_error)
    )
    if moved.rowcount == 0:
        raise _Taken


async def _segment(conn: AsyncConnection, b: Any) -> Any:
    """The WHERE clause of the broadcast's contacts (its view's filter as it started)."""
    live = sa.and_(
        contacts.c.space_id == b.space_id,
        contacts.c.merged_into_id.is_(None),
        contacts.c.status != "erased",
    )
    if b.contact_ids is not None:
        return sa.and_(live, contacts.c.id.in_(b.contact_ids))
    if b.segment is None:
        return None
    group = Group.model_validate(b.segment)
    return compile_filter(group, b.space_id, await field_defs(conn, b.space_id))


async def _reasons(
    conn: AsyncConnection, b: Any, page: list[Any], kind: str, window_hours: int | None
) -> dict[int, str]:
    """Why each contact of the page that cannot be sent to is skipped."""
    reasons: dict[int, str] = {}
    for row in page:
        if row.identity_id is None:
            reasons[row.id] = NO_IDENTITY
        elif row.unsubscribed_at is not None:
            reasons[row.id] = UNSUBSCRIBED
    reachable = {row.identity_id: row.id for row in page if row.id not in reasons}
    if not reachable:
        return reasons
    blocked = await conn.execute(
        sa.select(identities.c.id, identities.c.blocked)
        .where(identities.c.id.in_(reachable))
        .where(identities.c.blocked != int(Reach.OPEN))
    )
    for identity_id, reach in blocked:
        reasons[reachable.pop(identity_id)] = UNREACHABLE[Reach(reach)]
    if (b.settings or {}).get("skip_with_person", True) and reachable:
        busy = await conn.execute(
            sa.select(conversations.c.contact_id)
            .where(conversations.c.contact_id.in_(reachable.values()))
            .where(conversations.c.status == "open")
            .where(conversations.c.handler.in_(("waiting", "agent")))
        )
        for (contact_id,) in busy:
            reasons[contact_id] = WITH_PERSON
    message = b.message or {}
    allowed = message.get("template") if kind == "whatsapp" else message.get("tag")
    if window_hours is None or allowed or kind not in OUTSIDE_WINDOW:
        return reasons
    waiting = {i: c for i, c in reachable.items() if c not in reasons}
    since = now() - timedelta(hours=window_hours)
    recent = await last_inbound(conn, list(waiting))
    for identity_id, contact_id in waiting.items():
        at = recent.get(identity_id)
        if at is None or at < since:
            reasons[contact_id] = OUTSIDE_WINDOW[kind]
    return reasons


async def last_inbound(conn: AsyncConnection, identity_ids: list[int]) -> dict[int, Any]:
    """When each identity last wrote (windows count from it)."""
    if not identity_ids:
        return {}
    rows = await conn.execute(
        sa.select(conversations.c.identity_id, sa.func.max(messages.c.created_at))
        .join(messages, messages.c.conversation_id == conversations.c.id)
        .where(conversations.c.identity_id.in_(identity_ids))
        .where(messages.c.direction == "in")
        .group_by(conversations.c.identity_id)
    )
    return {identity_id: db_datetime(at) for identity_id, at in rows}
