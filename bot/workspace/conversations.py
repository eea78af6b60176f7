"""What people do to a conversation, the same from the API and from Slack.

The handover state lives in `conversations.handler`:

    bot --(bot asks, fallbacks, keyword)--> waiting --(claim)--> agent
     ^                                         |                   |
     +------------(back to bot, close)---------+-------------------+

Every transition is one conditional UPDATE: atomic and idempotent, so two agents
cannot both claim and the bot never answers over a human.

Assignment is of the contact (the glossary's assignee): every assignment of a
conversation is also written to `contacts.assignee_id`/`team_id`, which outlive the
conversation; a closed conversation keeps `closed_at` while its satisfaction survey
waits for the contact's answer (status still `open`, handler `flow`), and is closed
for good when that flow ends.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import now
from bot.errors import InvalidPayload, NotFound
from bot.model import Author, Part, parts_adapter
from bot.storage.db import Database
from bot.storage.tables import (
    assignments,
    contacts,
    conversations,
    desk_outbox,
    messages,
    outbox,
    spaces,
    users,
)
from bot.workspace.members import available_member, check_member, check_team
from bot.workspace.triggers import fire, we_wrote


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
        .where(c.id == conversation_id, c.status == "open", c.closed_at.is_(None))
        .where(sa.or_(c.handler != "agent", c.assignee_id.is_(None)))
        .values(handler="agent", assignee_id=user_id)
    )
    if taken.rowcount == 1:
        await _record(conn, conversation_id, user_id, user_id)
        await _contact_follows(conn, conversation_id)
        await _assigned(conn, conversation_id, user_id, None)
        return True
    row = await get(conn, conversation_id)
    if row.status != "open" or row.closed_at is not None:
        raise InvalidPayload("the conversation is closed")
    if row.assignee_id == user_id:
        return False
    name = (
        await conn.execute(sa.select(users.c.name).where(users.c.id == row.assignee_id))
    ).scalar()
    raise AlreadyClaimed(f"{name or 'someone'} already has this conversation")


async def hand_back(conn: AsyncConnection, conversation_id: int) -> None:
    """The bot answers again; the assignee stays on record."""
    c = conversations.c
    await conn.execute(
        conversations.update()
        .where(c.id == conversation_id, c.status == "open", c.closed_at.is_(None))
        .values(handler="bot", bot_fallbacks=0)
    )


async def close(conn: AsyncConnection, conversation_id: int, depth: int = 0) -> bool:
    """The contact's next message opens a new conversation, with the bot; False: it was
    closed already. The contact stays assigned unless the space says `release_on_close`."""
    c = conversations.c
    row = (
        await conn.execute(
            conversations.update()
            .where(c.id == conversation_id, c.status == "open", c.closed_at.is_(None))
            .values(status="closed", closed_at=now())
            .returning(c.space_id, c.contact_id)
        )
    ).first()
    if row is None:
        return False
    await _contact_closed(conn, row.space_id, row.contact_id, release=True)
    await fire(
        conn,
        row.space_id,
        "conversation_closed",
        contact_id=row.contact_id,
        conversation_id=conversation_id,
        depth=depth,
    )
    return True


async def close_for_good(conn: AsyncConnection, conversation_id: int) -> None:
    """The satisfaction survey asked after a close has ended: the conversation is closed,
    the bot or its person holding it as before the survey."""
    c = conversations.c
    row = (
        await conn.execute(
            conversations.update()
            .where(c.id == conversation_id, c.status == "open", c.closed_at.is_not(None))
            .values(
                status="closed",
                handler=sa.case((c.assignee_id.is_(None), "bot"), else_="agent"),
            )
            .returning(c.space_id, c.contact_id)
        )
    ).first()
    if row is not None:
        await _contact_closed(conn, row.space_id, row.contact_id, release=False)


async def contact_opened(conn: AsyncConnection, contact_id: int) -> None:
    """A conversation was opened for the contact: the views' `status` says `open`."""
    await conn.execute(
        contacts.update()
        .where(contacts.c.id == contact_id, contacts.c.status == "closed")
        .values(status="open")
    )


async def _contact_closed(
    conn: AsyncConnection, space_id: int, contact_id: int, release: bool
) -> None:
    """The contact is `closed` once none of its conversations is open (one per channel)."""
    c = conversations.c
    still_open = (
        sa.exists()
        .where(c.contact_id == contact_id, c.status == "open")
        .where(c.closed_at.is_(None))
    )
    await conn.execute(
        contacts.update()
        .where(contacts.c.id == contact_id, contacts.c.status == "open", ~still_open)
        .values(status="closed")
    )
    if not release:
        return
    settings = (
        await conn.execute(sa.select(spaces.c.settings).where(spaces.c.id == space_id))
    ).scalar()
    if (settings or {}).get("release_on_close"):
        await conn.execute(
            contacts.update()
            .where(contacts.c.id == contact_id, ~still_open)
            .values(assignee_id=None, team_id=None)
        )


async def assign(
    conn: AsyncConnection,
    conversation: Any,
    user_id: int | None,
    by_user_id: int | None,
    take: bool = False,
    team_id: int | None = None,
    depth: int = 0,
) -> None:
    """Give the conversation, and so its contact, to a member of its space (None
    unassigns), and to `team_id` if given; with `take`, the assignee answers from now on
    (the bot steps back)."""
    if user_id is not None:
        await check_member(conn, conversation.space_id, user_id)
    values: dict[str, Any] = {"assignee_id": user_id}
    if team_id is not None:
        await check_team(conn, conversation.space_id, team_id)
        values["team_id"] = team_id
    if take and user_id is not None and _working(conversation):
        values["handler"] = "agent"
    await conn.execute(
        conversations.update().where(conversations.c.id == conversation.id).values(**values)
    )
    await _record(conn, conversation.id, user_id, by_user_id)
    await _contact_follows(conn, conversation.id)
    if user_id is not None:
        await _assigned(conn, conversation.id, user_id, team_id, depth)


async def assign_team(
    conn: AsyncConnection,
    conversation: Any,
    team_id: int,
    by_user_id: int | None,
    depth: int = 0,
) -> int | None:
    """Round robin among the team's available members, who takes it; with nobody, the
    conversation waits in the team's queue. Returns who got it."""
    await check_team(conn, conversation.space_id, team_id)
    user_id = await available_member(conn, conversation.space_id, team_id)
    if user_id is not None:
        await assign(conn, conversation, user_id, by_user_id, True, team_id, depth)
        return user_id
    values: dict[str, Any] = {"assignee_id": None, "team_id": team_id}
    if _working(conversation) and conversation.handler in ("bot", "agent", "waiting"):
        values["handler"] = "waiting"
    await conn.execute(
        conversations.update().where(conversations.c.id == conversation.id).values(**values)
    )
    await _record(conn, conversation.id, None, by_user_id)
    await people_took_part(conn, conversation.id)  # the team's queue: people will answer
    await _contact_follows(conn, conversation.id)
    await _assigned(conn, conversation.id, None, team_id, depth)
    return None


async def assign_contact(
    conn: AsyncConnection,
    space_id: int,
    contact_id: int,
    user_id: int | None,
    team_id: int | None,
    by_user_id: int | None,
    pick: bool = False,
) -> tuple[int | None, int | None, list[int]]:
    """Give the contact to `user_id` (None: nobody) and `team_id` (None: its team stays);
    with `pick`, the user is chosen round robin inside the team. Its open conversations
    follow (a waiting one is taken). Returns (assignee, team, conversations that followed)."""
    contact = (
        await conn.execute(
            sa.select(contacts.c.team_id).where(
                contacts.c.id == contact_id, contacts.c.space_id == space_id
            )
        )
    ).first()
    if contact is None:
        raise NotFound(f"no contact {contact_id} in this space")
    if user_id is not None:
        await check_member(conn, space_id, user_id)
    if team_id is not None:
        await check_team(conn, space_id, team_id)
    if pick:
        user_id = await available_member(conn, space_id, team_id)
    team_id = team_id if team_id is not None else contact.team_id
    await conn.execute(
        contacts.update()
        .where(contacts.c.id == contact_id)
        .values(assignee_id=user_id, team_id=team_id)
    )
    c = conversations.c
    followed = (
        await conn.execute(
            sa.select(c.id, c.handler, c.assignee_id)
            .where(c.contact_id == contact_id, c.status == "open")
            .where(c.closed_at.is_(None))
        )
    ).all()
    for row in followed:
        values: dict[str, Any] = {"assignee_id": user_id, "team_id": team_id}
        if row.handler in ("waiting", "agent"):
            values["handler"] = "agent" if user_id is not None else "waiting"
        await conn.execute(conversations.update().where(c.id == row.id).values(**values))
        if row.assignee_id != user_id:
            await _record(conn, row.id, user_id, by_user_id)
            if user_id is not None:
                await _assigned(conn, row.id, user_id, team_id)
    return user_id, team_id, [row.id for row in followed]


def _working(conversation: Any) -> bool:
    """Open, and not a closed one whose satisfaction survey waits for an answer."""
    return conversation.status == "open" and getattr(conversation, "closed_at", None) is None


async def _contact_follows(conn: AsyncConnection, conversation_id: int) -> None:
    """The conversation's assignee and team are its contact's from now on."""
    of = conversations.c

    def column(name: str) -> Any:
        return sa.select(of[name]).where(of.id == conversation_id).scalar_subquery()

    await conn.execute(
        contacts.update()
        .where(contacts.c.id == column("contact_id"))
        .values(assignee_id=column("assignee_id"), team_id=column("team_id"))
    )


async def _assigned(
    conn: AsyncConnection,
    conversation_id: int,
    user_id: int | None,
    team_id: int | None,
    depth: int = 0,
) -> None:
    """Automations on `conversation_assigned` hear of it (to a person, or a team's queue)."""
    row = (
        await conn.execute(
            sa.select(conversations.c.space_id, conversations.c.contact_id).where(
                conversations.c.id == conversation_id
            )
        )
    ).one()
    await fire(
        conn,
        row.space_id,
        "conversation_assigned",
        contact_id=row.contact_id,
        conversation_id=conversation_id,
        depth=depth,
        user_id=user_id,
        team_id=team_id,
    )


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
    if user_id is not None:
        await people_took_part(conn, conversation_id)


async def people_took_part(
    conn: AsyncConnection, conversation_id: int, wrote: bool = False
) -> None:
    """Remember, once, when people first took part (assigned, handed over, or `wrote` to
    the contact): the reports read handovers and first responses from the conversation."""
    c, at = conversations.c, now()
    values: dict[str, Any] = {"handed_over_at": sa.func.coalesce(c.handed_over_at, at)}
    if wrote:
        values["first_reply_at"] = sa.func.coalesce(c.first_reply_at, at)
    await conn.execute(conversations.update().where(c.id == conversation_id).values(**values))


async def add_note(
    db: Database,
    conn: AsyncConnection,
    conversation: Any,
    text: str,
    user_id: int | None,
    dedupe_key: str | None = None,
) -> int | None:
    """An internal note on the conversation: kept with its messages, never sent; None: a
    duplicate (a retried request with the same `dedupe_key`)."""
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
                dedupe_key=dedupe_key[:64] if dedupe_key else None,
                created_at=now(),
            )
            .on_conflict_do_nothing()
            .returning(messages.c.id)
        )
    ).scalar()


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
    # a closed conversation whose satisfaction survey waits only takes the survey's messages
    if conversation.status != "open" or (not _working(conversation) and author.type != "flow"):
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
                message_id=message_id,
                channel_id=conversation.channel_id,
                conversation_id=conversation.id,
                next_attempt_at=at,
            )
        )
        by_person = author.type == "user"
        if by_person:
            await people_took_part(conn, conversation.id, wrote=True)
        await we_wrote(conn, conversation.id, by_person=by_person)
    return message_id
