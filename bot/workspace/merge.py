"""Merging two contacts (the same person on two channels), and undoing it exactly."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import now
from bot.errors import InvalidPayload, NotFound
from bot.storage.tables import (
    contact_merges,
    contact_tags,
    contacts,
    conversations,
    field_values,
    identities,
)
from bot.workspace.events import emit

# what the survivor lacks, it takes from the other (undo empties it again); an opt-out
# too: the person said STOP on one channel, so no broadcast reaches them on any
FILLABLE = ("name", "phone", "email", "language", "avatar_url", "unsubscribed_at")


async def _live(conn: AsyncConnection, space_id: int, contact_id: int) -> Any:
    row = (
        await conn.execute(
            sa.select(contacts)
            .where(contacts.c.id == contact_id)
            .where(contacts.c.space_id == space_id)
            .where(contacts.c.merged_into_id.is_(None))
        )
    ).first()
    if row is None:
        raise NotFound(f"no contact {contact_id} in this space")
    return row


async def merge(conn: AsyncConnection, space_id: int, survivor_id: int, other_id: int) -> int:
    """Move the other contact's identities, conversations, fields and tags; returns the merge id."""
    survivor = await _live(conn, space_id, survivor_id)
    other = await _live(conn, space_id, other_id)
    if survivor_id == other_id:
        raise InvalidPayload("a contact cannot be merged with itself")
    moved: dict[str, Any] = {
        "identities": list(
            (
                await conn.execute(
                    sa.select(identities.c.id).where(identities.c.contact_id == other_id)
                )
            ).scalars()
        ),
        "conversations": list(
            (
                await conn.execute(
                    sa.select(conversations.c.id).where(conversations.c.contact_id == other_id)
                )
            ).scalars()
        ),
    }
    await conn.execute(
        identities.update()
        .where(identities.c.id.in_(moved["identities"]))
        .values(contact_id=survivor_id)
    )
    await conn.execute(
        conversations.update()
        .where(conversations.c.id.in_(moved["conversations"]))
        .values(contact_id=survivor_id)
    )
    have = set(
        (
            await conn.execute(
                sa.select(field_values.c.field_id).where(field_values.c.contact_id == survivor_id)
            )
        ).scalars()
    )
    copied = [
        r
        for r in (
            await conn.execute(sa.select(field_values).where(field_values.c.contact_id == other_id))
        ).all()
        if r.field_id not in have
    ]
    for r in copied:
        await conn.execute(
            field_values.insert().values(
                contact_id=survivor_id,
                field_id=r.field_id,
                value_text=r.value_text,
                value_number=r.value_number,
                value_date=r.value_date,
            )
        )
    moved["fields"] = [r.field_id for r in copied]
    tagged = set(
        (
            await conn.execute(
                sa.select(contact_tags.c.tag_id).where(contact_tags.c.contact_id == survivor_id)
            )
        ).scalars()
    )
    new_tags = [
        t
        for t in (
            await conn.execute(
                sa.select(contact_tags.c.tag_id).where(contact_tags.c.contact_id == other_id)
            )
        ).scalars()
        if t not in tagged
    ]
    for tag_id in new_tags:
        await conn.execute(contact_tags.insert().values(tag_id=tag_id, contact_id=survivor_id))
    moved["tags"] = new_tags
    filled = {
        c: getattr(other, c)
        for c in FILLABLE
        if getattr(survivor, c) is None and getattr(other, c) is not None
    }
    if filled:
        await conn.execute(contacts.update().where(contacts.c.id == survivor_id).values(**filled))
    moved["filled"] = list(filled)
    await conn.execute(
        contacts.update().where(contacts.c.id == other_id).values(merged_into_id=survivor_id)
    )
    merge_id = (
        await conn.execute(
            contact_merges.insert()
            .values(space_id=space_id, survivor_id=survivor_id, merged_id=other_id, moved=moved)
            .returning(contact_merges.c.id)
        )
    ).scalar_one()
    merged = {"contact_id": survivor_id, "merged_contact_id": other_id, "merge_id": merge_id}
    await emit(conn, space_id, "contact.merged", merged)
    return int(merge_id)


async def undo(conn: AsyncConnection, space_id: int, merge_id: int) -> None:
    row = (
        await conn.execute(
            sa.select(contact_merges)
            .where(contact_merges.c.id == merge_id)
            .where(contact_merges.c.space_id == space_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"no merge {merge_id} in this space")
    if row.undone_at is not None:
        raise InvalidPayload(f"merge {merge_id} was already undone")
    moved, survivor, other = row.moved, row.survivor_id, row.merged_id
    await conn.execute(
        identities.update().where(identities.c.id.in_(moved["identities"])).values(contact_id=other)
    )
    await conn.execute(
        conversations.update()
        .where(conversations.c.id.in_(moved["conversations"]))
        .values(contact_id=other)
    )
    await conn.execute(
        field_values.delete()
        .where(field_values.c.contact_id == survivor)
        .where(field_values.c.field_id.in_(moved["fields"]))
    )
    await conn.execute(
        contact_tags.delete()
        .where(contact_tags.c.contact_id == survivor)
        .where(contact_tags.c.tag_id.in_(moved["tags"]))
    )
    if moved["filled"]:
        await conn.execute(
            contacts.update()
            .where(contacts.c.id == survivor)
            .values(**dict.fromkeys(moved["filled"]))
        )
    await conn.execute(contacts.update().where(contacts.c.id == other).values(merged_into_id=None))
    await conn.execute(
        contact_merges.update().where(contact_merges.c.id == merge_id).values(undone_at=now())
    )
