"""The hot path: store what a platform sent, and queue it for the handlers, in one commit.

Per inbound message: find or create the contact and identity, get or open the
conversation, insert the message (a redelivery hits the unique
`(channel_id, external_id)` and stops there), insert the work item. Nothing
else happens before the acknowledgement.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.model import (
    Event,
    Inbound,
    MessageEdited,
    Sender,
    StatusChanged,
    inbound_parts,
    parts_adapter,
)
from bot.storage.db import Database
from bot.storage.tables import contacts, conversations, identities, messages, work_items

log = logging.getLogger(__name__)

# A status only moves forward: a late "delivered" never overwrites "read".
STATUS_BEFORE: dict[str, tuple[str, ...]] = {
    "sent": ("pending",),
    "delivered": ("pending", "sent"),
    "read": ("pending", "sent", "delivered"),
    "failed": ("pending", "sent"),
}


@dataclass
class Stored:
    """What one commit did: new message ids and how many work items it queued."""

    message_ids: list[int] = field(default_factory=list)
    duplicates: int = 0
    queued: int = 0
    updated: int = 0


@dataclass(frozen=True)
class Conversation:
    id: int
    contact_id: int
    opened: bool


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


async def store_events(db: Database, channel_id: str, space_id: int, events: list[Event]) -> Stored:
    """Commit every event of one request in a single transaction; return when durable."""
    stored = Stored()
    async with db.write() as conn:
        for event in events:
            if isinstance(event, StatusChanged):
                stored.updated += await _status(conn, channel_id, event)
            elif isinstance(event, MessageEdited):
                stored.updated += await _edit(conn, channel_id, event)
            else:
                await _inbound(db, conn, channel_id, space_id, event, stored)
    return stored


async def _inbound(
    db: Database,
    conn: AsyncConnection,
    channel_id: str,
    space_id: int,
    event: Inbound,
    stored: Stored,
) -> None:
    at = now()
    conversation = await _conversation(db, conn, channel_id, space_id, event.sender, at)
    message_id = (
        await conn.execute(
            db.insert(messages)
            .values(
                space_id=space_id,
                conversation_id=conversation.id,
                channel_id=channel_id,
                direction="in",
                external_id=event.external_id,
                parts=parts_adapter.dump_python(list(inbound_parts(event)), mode="json"),
                status="received",
                created_at=at,
            )
            .on_conflict_do_nothing()
            .returning(messages.c.id)
        )
    ).scalar()
    if message_id is None:
        stored.duplicates += 1
        return
    await conn.execute(
        work_items.insert().values(
            conversation_id=conversation.id,
            payload={
                "event": event.model_dump(mode="json"),
                "message_id": message_id,
                "opened": conversation.opened,
            },
            created_at=at,
        )
    )
    await conn.execute(
        conversations.update()
        .where(conversations.c.id == conversation.id)
        .values(last_message_at=at)
    )
    await conn.execute(
        contacts.update().where(contacts.c.id == conversation.contact_id).values(last_message_at=at)
    )
    stored.message_ids.append(message_id)
    stored.queued += 1


async def _conversation(
    db: Database,
    conn: AsyncConnection,
    channel_id: str,
    space_id: int,
    sender: Sender,
    at: datetime,
) -> Conversation:
    """The identity's open conversation; contact, identity and conversation made as needed."""
    row = (
        await conn.execute(
            sa.select(identities.c.id, identities.c.contact_id, conversations.c.id.label("conv"))
            .outerjoin(
                conversations,
                sa.and_(
                    conversations.c.identity_id == identities.c.id,
                    conversations.c.status == "open",
                ),
            )
            .where(identities.c.channel_id == channel_id)
            .where(identities.c.external_id == sender.external_id)
        )
    ).first()
    if row is not None and row.conv is not None:
        return Conversation(id=row.conv, contact_id=row.contact_id, opened=False)
    if row is None:
        contact_id = (
            await conn.execute(
                contacts.insert()
                .values(
                    space_id=space_id,
                    name=sender.name,
                    language=sender.language,
                    phone=sender.phone,
                    avatar_url=sender.avatar_url,
                    created_at=at,
                )
                .returning(contacts.c.id)
            )
        ).scalar_one()
        identity_id = (
            await conn.execute(
                identities.insert()
                .values(
                    contact_id=contact_id, channel_id=channel_id, external_id=sender.external_id
                )
                .returning(identities.c.id)
            )
        ).scalar_one()
    else:
        contact_id, identity_id = row.contact_id, row.id
    conversation_id = (
        await conn.execute(
            conversations.insert()
            .values(
                space_id=space_id,
                contact_id=contact_id,
                channel_id=channel_id,
                identity_id=identity_id,
                created_at=at,
            )
            .returning(conversations.c.id)
        )
    ).scalar_one()
    return Conversation(id=conversation_id, contact_id=contact_id, opened=True)


async def _status(conn: AsyncConnection, channel_id: str, event: StatusChanged) -> int:
    result = await conn.execute(
        messages.update()
        .where(messages.c.channel_id == channel_id)
        .where(messages.c.external_id == event.external_id)
        .where(messages.c.direction == "out")
        .where(messages.c.status.in_(STATUS_BEFORE[event.status]))
        .values(status=event.status, error=event.error)
    )
    return result.rowcount


async def _edit(conn: AsyncConnection, channel_id: str, event: MessageEdited) -> int:
    result = await conn.execute(
        messages.update()
        .where(messages.c.channel_id == channel_id)
        .where(messages.c.external_id == event.external_id)
        .where(messages.c.direction == "in")
        .values(parts=parts_adapter.dump_python(list(event.parts), mode="json"))
    )
    return result.rowcount
