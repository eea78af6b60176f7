"""What receipts, edits and blocks change of what is stored: a status moves forward
only, and only on the sender's own messages; the spaces that hear `message.status` are
told, in the same commit.

Run by the ingest after a batch's new messages, so an edit or a receipt finds a message
that arrived in the same batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.model import (
    ContactBlocked,
    Event,
    MessageEdited,
    ReadUpTo,
    Seen,
    Sender,
    StatusChanged,
    parts_adapter,
)
from bot.storage.tables import conversations, identities, messages, webhook_events
from bot.workspace.events import Topics, event_row


@dataclass(frozen=True)
class Changed:
    rows: int  # messages or identities changed
    events: int = 0  # for outgoing webhooks


async def apply(
    conn: AsyncConnection, channel_id: str, event: Event, topics: Topics | None
) -> Changed:
    """Apply one event that is not a new message (others change nothing)."""
    if isinstance(event, StatusChanged | ReadUpTo | Seen):
        return await _move(conn, _status(channel_id, event), topics)
    if isinstance(event, MessageEdited):
        return Changed(await _edit(conn, channel_id, event))
    if isinstance(event, ContactBlocked):
        return Changed(await _blocked(conn, channel_id, event))
    return Changed(0)


# A status only moves forward: a late "delivered" never overwrites "read".
STATUS_BEFORE: dict[str, tuple[str, ...]] = {
    "sent": ("pending",),
    "delivered": ("pending", "sent"),
    "read": ("pending", "sent", "delivered"),
    "failed": ("pending", "sent"),
}


def _status(channel_id: str, event: StatusChanged | ReadUpTo | Seen) -> sa.Update:
    """The update a receipt makes: forward only, and only on the sender's own messages."""
    moved = (
        messages.update()
        .where(messages.c.channel_id == channel_id)
        .where(messages.c.direction == "out")
    )
    if isinstance(event, StatusChanged):
        return (
            moved.where(messages.c.external_id == event.external_id)
            .where(messages.c.status.in_(STATUS_BEFORE[event.status]))
            .values(status=event.status, error=event.error)
        )
    mine = messages.c.conversation_id.in_(_conversations_of(channel_id, event.sender))
    if isinstance(event, ReadUpTo):
        watermark = event.watermark.astimezone(UTC).replace(tzinfo=None)
        return (
            moved.where(messages.c.status.in_(STATUS_BEFORE["read"]))
            .where(messages.c.created_at <= watermark)
            .where(mine)
            .values(status="read")
        )
    # "pending" counts: the sender records the send after the push the receipt answers,
    # and it never moves a status back
    return (
        moved.where(messages.c.id == event.message_id)
        .where(messages.c.status.in_(STATUS_BEFORE[event.status]))
        .where(mine)
        .values(status=event.status)
    )


async def _move(conn: AsyncConnection, update: sa.Update, topics: Topics | None) -> Changed:
    """Run a receipt's update; `message.status` for the spaces that hear it."""
    if topics is None or not topics.anyone_wants("message.status"):
        return Changed((await conn.execute(update)).rowcount)
    rows = (
        await conn.execute(
            update.returning(
                messages.c.id,
                messages.c.space_id,
                messages.c.conversation_id,
                messages.c.channel_id,
                messages.c.status,
                messages.c.error,
            )
        )
    ).all()
    events = []
    for row in rows:
        message = row._asdict()
        space_id = message.pop("space_id")
        if topics.wants(space_id, "message.status"):
            events.append(
                event_row(space_id, "message.status", {"message": message}, row.conversation_id)
            )
    if events:
        await conn.execute(webhook_events.insert(), events)
    return Changed(len(rows), len(events))


async def _edit(conn: AsyncConnection, channel_id: str, event: MessageEdited) -> int:
    result = await conn.execute(
        messages.update()
        .where(messages.c.channel_id == channel_id)
        .where(messages.c.external_id == event.external_id)
        .where(messages.c.direction == "in")
        .values(parts=parts_adapter.dump_python(list(event.parts), mode="json"))
    )
    return result.rowcount


def _conversations_of(channel_id: str, sender: Sender) -> sa.Select[tuple[int]]:
    """Only the sender's own conversations: nobody marks another contact's messages."""
    return (
        sa.select(conversations.c.id)
        .join(identities, identities.c.id == conversations.c.identity_id)
        .where(identities.c.channel_id == channel_id)
        .where(identities.c.external_id == sender.external_id)
    )


async def _blocked(conn: AsyncConnection, channel_id: str, event: ContactBlocked) -> int:
    result = await conn.execute(
        identities.update()
        .where(identities.c.channel_id == channel_id)
        .where(identities.c.external_id == event.sender.external_id)
        .values(blocked=int(event.blocked))
    )
    return result.rowcount
