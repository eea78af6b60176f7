"""What people do to a conversation, the same from the API and from Slack.

The handover state lives in `conversations.handler`:

    bot --(bot asks, fallbacks, keyword)--> waiting --(claim)--> agent
     ^                                         |                   |
     +------------(back to bot, close)---------+-------------------+

Every transition is one conditional UPDATE: atomic and idempotent, so two agents
cannot both claim and the bot never answers over a human.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import InvalidPayload, NotFound
from bot.ingest import now
from bot.model import Author, Part, parts_adapter
from bot.storage.db import Database
from bot.storage.tables import (
    assignments,
    conversations,
    desk_outbox,
    messages,
    outbox,
    space_members,
    users,
)


class AlreadyClaimed(InvalidPayload):
    """Somebody else holds the conversation."""


async def get(conn: AsyncConnection, conversation_id: int, space_id: int | None = None) -> Any:
    query = sa.select(conversations).where(conversations.c.id == conversation_id)
    if space_id is not None:
        query = query.where(conversations.c.space_id == space_id)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"no conversation {conversation_id} in this space")
    return row


async def claim(conn: AsyncConnection, conversation_id: int, user_id: int) -> bool:
    """Take the conversation as `user_id`; False if it was already theirs."""
    c = conversations.c
    taken = await conn.execute(
        conversations.update()
        .where(c.id == conversation_id, c.status == "open")
        .where(sa.or_(c.handler != "agent", c.assignee_id.is_(None)))
        .values(handler="agent", assignee_id=user_id)
    )
    if taken.rowcount == 1:
        await _record(conn, conversation_id, user_id, user_id)
        return True
    row = await get(conn, conversation_id)
    if row.status != "open":
        raise InvalidPayload("the conversation is closed")
    if row.assignee_id == user_id:
        return False
    name = (
        await conn.execute(sa.select(users.c.name).where(users.c.id == row.assignee_id))
    ).scalar()
    raise AlreadyClaimed(f"{name or 'someone'} already has this conversation")


async def hand_back(conn: AsyncConnection, conversation_id: int) -> None:
    """The bot answers again; the assignee stays on record."""
    await conn.execute(
        conversations.update()
        .where(conversations.c.id == conversation_id, conversations.c.status == "open")
        .values(handler="bot", bot_fallbacks=0)
    )


async def close(conn: AsyncConnection, conversation_id: int) -> None:
    """The contact's next message opens a new conversation, with the bot."""
    await conn.execute(
        conversations.update()
        .where(conversations.c.id == conversation_id, conversations.c.status == "open")
        .values(status="closed", closed_at=now())
    )


async def assign(
    conn: AsyncConnection,
    conversation: Any,
    user_id: int | None,
    by_user_id: int | None,
    take: bool = False,
) -> None:
    """Give the conversation to a member of its space (None unassigns); with `take`,
    the assignee answers from now on (the bot steps back)."""
    if user_id is not None:
        member = (
            await conn.execute(
                sa.select(space_members.c.user_id).where(
                    space_members.c.space_id == conversation.space_id,
                    space_members.c.user_id == user_id,
                )
            )
        ).first()
        if member is None:
            raise NotFound(f"no user {user_id} in this space")
    values: dict[str, Any] = {"assignee_id": user_id}
    if take and user_id is not None and conversation.status == "open":
        values["handler"] = "agent"
    await conn.execute(
        conversations.update().where(conversations.c.id == conversation.id).values(**values)
    )
    await _record(conn, conversation.id, user_id, by_user_id)


async def desk_notice(conn: AsyncConnection, conversation_id: int, kind: str = "state") -> None:
    """Queue a notice for the agent desk (its thread's header is redrawn from the database)."""
    await conn.execute(
        desk_outbox.insert().values(
            conversation_id=conversation_id, kind=kind, next_attempt_at=now()
        )
    )


async def _record(
    conn: AsyncConnection, conversation_id: int, user_id: int | None, by_user_id: int | None
) -> None:
    await conn.execute(
        assignments.insert().values(
            conversation_id=conversation_id, user_id=user_id, by_user_id=by_user_id
        )
    )


async def add_note(
    db: Database, conn: AsyncConnection, conversation: Any, text: str, user_id: int | None
) -> int:
    """An internal note on the conversation: kept with its messages, never sent."""
    return (
        await conn.execute(
            db.insert(messages)
            .values(
                space_id=conversation.space_id,
                conversation_id=conversation.id,
                channel_id=conversation.channel_id,
                direction="note",
                parts=[{"type": "text", "text": text}],
                status="internal",
                sender_user_id=user_id,
                sender_type=Author.user(user_id).type,
                sender_id=Author.user(user_id).id,
                created_at=now(),
            )
            .returning(messages.c.id)
        )
    ).scalar_one()


async def queue_agent_message(
    db: Database,
    conn: AsyncConnection,
    conversation: Any,
    parts: list[Part],
    user_id: int | None,
    dedupe_key: str | None,
    author: Author | None = None,
) -> int | None:
    """A message to the contact, queued for the sender; None: a duplicate.

    Sent by `author`, or else by the user `user_id` (whose name it carries)."""
    author = author or Author.user(user_id)
    if conversation.status != "open":
        raise InvalidPayload(
            "the conversation is closed; the contact's next message opens a new one"
        )
    at = now()
    message_id = (
        await conn.execute(
            db.insert(messages)
            .values(
                space_id=conversation.space_id,
                conversation_id=conversation.id,
                channel_id=conversation.channel_id,
                direction="out",
                parts=parts_adapter.dump_python(parts, mode="json"),
                status="pending",
                sender_user_id=user_id,
                sender_type=author.type,
                sender_id=author.id,
                created_at=at,
                dedupe_key=dedupe_key[:64] if dedupe_key else None,
            )
            .on_conflict_do_nothing()
            .returning(messages.c.id)
        )
    ).scalar()
    if message_id is not None:
        await conn.execute(
            outbox.insert().values(
                message_id=message_id, channel_id=conversation.channel_id, next_attempt_at=at
            )
        )
    return message_id
