"""A broadcast's life: created, scheduled or started, paused, resumed, cancelled, reported.

The API and the CLI (through the API) call these; the runner does the planning and the
sending. A change of state is one conditional UPDATE, so two people pressing pause and
cancel at once leave one of them told why not (409), never a mixed state.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import now
from bot.errors import Conflict, NotFound
from bot.model import MediaPart, QuickReply
from bot.storage.tables import (
    broadcast_recipients,
    broadcasts,
    conversations,
    messages,
    shortcuts,
    spaces,
    views,
)
from broadcasts.definition import (
    RECIPIENT_STATUSES,
    BroadcastMessage,
    NewBroadcast,
    check,
    dump,
)

# what each action does: the states it leaves, and the state it makes
MOVES: dict[str, tuple[tuple[str, ...], str]] = {
    "start": (("draft", "scheduled"), "running"),
    "pause": (("running",), "paused"),
    "resume": (("paused",), "running"),
    "cancel": (("draft", "scheduled", "running", "paused"), "cancelled"),
}
_r = broadcast_recipients.c


async def create(
    conn: AsyncConnection, space_id: int, user_id: int | None, new: NewBroadcast
) -> int:
    """Store a draft, or a scheduled broadcast when it says `send_at`; its id."""
    await check(conn, space_id, new)
    send_at = None
    if new.send_at is not None:
        send_at = new.send_at
        if send_at.tzinfo is None:
            zone = (
                await conn.execute(sa.select(spaces.c.timezone).where(spaces.c.id == space_id))
            ).scalar_one()
            send_at = send_at.replace(tzinfo=ZoneInfo(zone))
        send_at = send_at.astimezone(UTC)
    try:
        async with conn.begin_nested():
            return (
                await conn.execute(
                    broadcasts.insert()
                    .values(
                        space_id=space_id,
                        name=new.name,
                        channel_id=new.channel_id,
                        view_id=new.view_id,
                        contact_ids=new.contact_ids,
                        message=dump(new.message),
                        settings=new.settings.model_dump(),
                        status="scheduled" if send_at else "draft",
                        send_at=send_at,
                        created_by=user_id,
                        created_at=now(),
                    )
                    .returning(broadcasts.c.id)
                )
            ).scalar_one()
    except IntegrityError:
        raise Conflict(f"a broadcast named {new.name!r} exists in this space") from None


async def get(conn: AsyncConnection, space_id: int, broadcast_id: int) -> Any:
    row = (
        await conn.execute(
            sa.select(broadcasts)
            .where(broadcasts.c.id == broadcast_id)
            .where(broadcasts.c.space_id == space_id)
        )
    ).first()
    if row is None:
        raise NotFound(
            f"no broadcast {broadcast_id} in this space: see `chancenter broadcasts list`"
        )
    return row


async def move(conn: AsyncConnection, space_id: int, broadcast_id: int, action: str) -> None:
    """Start, pause, resume or cancel; Conflict names the state that does not allow it."""
    sources, target = MOVES[action]
    values: dict[str, Any] = {"status": target}
    at = now()
    if action == "start":
        values["started_at"] = at
        values.update(await _frozen(conn, await get(conn, space_id, broadcast_id)))
    if action == "cancel":
        values["finished_at"] = at
    moved = await conn.execute(
        broadcasts.update()
        .where(broadcasts.c.id == broadcast_id)
        .where(broadcasts.c.space_id == space_id)
        .where(broadcasts.c.status.in_(sources))
        .values(**values)
    )
    if moved.rowcount == 0:
        row = await get(conn, space_id, broadcast_id)
        raise Conflict(f"cannot {action} a broadcast that is {row.status}")
    if action == "cancel":
        await conn.execute(
            broadcast_recipients.update()
            .where(_r.broadcast_id == broadcast_id)
            .where(_r.status == "queued")
            .values(status="cancelled", reason="the broadcast was cancelled")
        )


async def _frozen(conn: AsyncConnection, b: Any) -> dict[str, Any]:
    """What a starting broadcast keeps of its view and shortcut, so editing or deleting
    them later changes nothing of it: the view's filter, the shortcut's message."""
    frozen: dict[str, Any] = {}
    if b.contact_ids is None:
        segment = (
            await conn.execute(sa.select(views.c.filter).where(views.c.id == b.view_id))
        ).scalar()
        if segment is None:
            raise Conflict("its view was deleted: create the broadcast again with another")
        frozen["segment"] = segment
    message = BroadcastMessage.model_validate(b.message)
    if message.shortcut_id is not None:
        shortcut = (
            await conn.execute(sa.select(shortcuts).where(shortcuts.c.id == message.shortcut_id))
        ).first()
        if shortcut is None:
            raise Conflict("its shortcut was deleted: create the broadcast again")
        media = (
            [MediaPart(type="file", url=shortcut.attachment_url)] if shortcut.attachment_url else []
        )
        replies = [QuickReply(title=q, payload=q) for q in shortcut.quick_replies or ()]
        frozen["message"] = dump(
            message.model_copy(
                update={
                    "shortcut_id": None,
                    "text": shortcut.text or None,
                    "media": [*media, *message.media],
                    "quick_replies": [*replies, *message.quick_replies],
                }
            )
        )
    return frozen


def outcome() -> Any:
    """A recipient's status as people read it: what the platform later said of a sent
    message (delivered, read, or failed after all) wins."""
    later = ("delivered", "read", "failed")
    return sa.case(
        (sa.and_(_r.status == "sent", messages.c.status.in_(later)), messages.c.status),
        else_=_r.status,
    )


async def counts(conn: AsyncConnection, broadcast_id: int) -> dict[str, int]:
    """Recipients by status, every status named (0 where none), and `responded`: sent to
    and wrote back since."""
    shown = outcome().label("shown")
    rows = await conn.execute(
        sa.select(shown, sa.func.count())
        .select_from(broadcast_recipients)
        .outerjoin(messages, messages.c.id == _r.message_id)
        .where(_r.broadcast_id == broadcast_id)
        .group_by(shown)
    )
    found = {status: 0 for status in RECIPIENT_STATUSES}
    found.update({row[0]: row[1] for row in rows})
    reply = messages.alias("reply")
    answered = (
        sa.exists()
        .where(conversations.c.identity_id == _r.identity_id)
        .where(reply.c.conversation_id == conversations.c.id)
        .where(reply.c.direction == "in")
        .where(reply.c.created_at >= _r.sent_at)
    )
    found["responded"] = (
        await conn.execute(
            sa.select(sa.func.count())
            .select_from(broadcast_recipients)
            .where(_r.broadcast_id == broadcast_id)
            .where(_r.sent_at.is_not(None))
            .where(answered)
        )
    ).scalar_one()
    found["total"] = sum(found[s] for s in RECIPIENT_STATUSES)
    return found


async def skip_reasons(conn: AsyncConnection, broadcast_id: int) -> dict[str, int]:
    rows = await conn.execute(
        sa.select(_r.reason, sa.func.count())
        .where(_r.broadcast_id == broadcast_id)
        .where(_r.status == "skipped")
        .group_by(_r.reason)
    )
    return {row[0]: row[1] for row in rows}


def recipients_query(broadcast_id: int, status: str | None) -> sa.Select[Any]:
    """Recipients in id order with what a report shows of each (`status` filters)."""
    shown = outcome()
    query = (
        sa.select(
            _r.id,
            _r.contact_id,
            _r.identity_id,
            shown.label("status"),
            _r.reason,
            _r.message_id,
            _r.sent_at,
            messages.c.error,
        )
        .outerjoin(messages, messages.c.id == _r.message_id)
        .where(_r.broadcast_id == broadcast_id)
        .order_by(_r.id)
    )
    if status is not None:
        query = query.where(shown == status)
    return query
