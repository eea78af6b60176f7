"""Privacy requests: export one contact's data, or erase it (keeping an audit entry)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import now
from bot.model import Reach
from bot.storage.tables import (
    audit_log,
    contact_tags,
    contacts,
    conversations,
    field_values,
    identities,
    messages,
)
from bot.workspace.contacts import fields_of, get_contact, identities_of, tags_of

ERASED = [{"type": "text", "text": "[erased]"}]


async def export(conn: AsyncConnection, space_id: int, contact_id: int) -> dict[str, Any]:
    """Everything we hold about one contact, as JSON-ready data."""
    contact = await get_contact(conn, space_id, contact_id)
    fields = await fields_of(conn, contact_id)
    tag_names = await tags_of(conn, contact_id)
    history = (
        await conn.execute(
            sa.select(
                messages.c.conversation_id,
                messages.c.direction,
                messages.c.parts,
                messages.c.created_at,
            )
            .join(conversations, conversations.c.id == messages.c.conversation_id)
            .where(conversations.c.contact_id == contact_id)
            .order_by(messages.c.id)
        )
    ).all()
    return {
        "contact": {
            k: contact._mapping[k]
            for k in ("id", "name", "phone", "email", "language", "unsubscribed_at")
        },
        "identities": await identities_of(conn, contact_id),
        "fields": fields,
        "tags": tag_names,
        "messages": [
            {
                "conversation_id": m.conversation_id,
                "direction": m.direction,
                "parts": m.parts,
                "at": m.created_at,
            }
            for m in history
        ],
    }


async def erase(conn: AsyncConnection, space_id: int, contact_id: int, by: int | None) -> int:
    """Redact messages, drop fields and tags, unlink identities; returns messages redacted."""
    await get_contact(conn, space_id, contact_id)
    conversation_ids = sa.select(conversations.c.id).where(conversations.c.contact_id == contact_id)
    redacted = await conn.execute(
        messages.update()
        .where(messages.c.conversation_id.in_(conversation_ids))
        .values(parts=ERASED, error=None)
    )
    await conn.execute(field_values.delete().where(field_values.c.contact_id == contact_id))
    await conn.execute(contact_tags.delete().where(contact_tags.c.contact_id == contact_id))
    # identities keep their row (conversations hang off it) but lose the platform's user id
    # and can never be sent to again: what is still queued fails, saying why
    await conn.execute(
        identities.update()
        .where(identities.c.contact_id == contact_id)
        .values(
            external_id=sa.literal("erased-") + sa.cast(identities.c.id, sa.String),
            blocked=int(Reach.ERASED),
        )
    )
    await conn.execute(
        conversations.update()
        .where(conversations.c.contact_id == contact_id, conversations.c.status == "open")
        .values(status="closed", handler="bot", closed_at=now())
    )
    # status "erased": in no list or view, reached by no survey or broadcast
    await conn.execute(
        contacts.update()
        .where(contacts.c.id == contact_id)
        .values(name=None, phone=None, email=None, avatar_url=None, language=None, status="erased")
    )
    await conn.execute(
        audit_log.insert().values(
            space_id=space_id,
            user_id=by,
            action="erase",
            subject=f"contact:{contact_id}",
            detail={"messages_redacted": redacted.rowcount},
        )
    )
    return redacted.rowcount
