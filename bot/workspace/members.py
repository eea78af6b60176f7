"""Who may take a conversation: members and teams of a space, and who is free now."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import NotFound
from bot.storage.tables import assignments, conversations, space_members, team_members, teams, users


async def check_member(conn: AsyncConnection, space_id: int, user_id: int) -> None:
    found = (
        await conn.execute(
            sa.select(space_members.c.user_id).where(
                space_members.c.space_id == space_id, space_members.c.user_id == user_id
            )
        )
    ).first()
    if found is None:
        raise NotFound(f"no user {user_id} in this space")


async def check_team(conn: AsyncConnection, space_id: int, team_id: int) -> None:
    query = sa.select(teams.c.id).where(teams.c.space_id == space_id, teams.c.id == team_id)
    if (await conn.execute(query)).first() is None:
        raise NotFound(f"no team {team_id} in this space")


async def team_named(conn: AsyncConnection, space_id: int, team: str | None) -> int | None:
    """The id of the space's team called `team` (a handover's, an agent's `assign`)."""
    if not team:
        return None
    query = sa.select(teams.c.id).where(teams.c.space_id == space_id, teams.c.name == team)
    return (await conn.execute(query)).scalar()


async def available_member(
    conn: AsyncConnection, space_id: int, team_id: int | None = None, prefer: int | None = None
) -> int | None:
    """Who can take a conversation now: online, under their capacity (and in the team).

    `prefer` (the contact's assignee) first when available; else round robin: whoever
    was given a conversation longest ago (or never)."""
    open_load = (
        sa.select(sa.func.count())
        .where(conversations.c.assignee_id == users.c.id)
        .where(conversations.c.status == "open")
        .where(conversations.c.handler == "agent")
        .scalar_subquery()
    )
    query = (
        sa.select(users.c.id)
        .join(space_members, space_members.c.user_id == users.c.id)
        .where(space_members.c.space_id == space_id)
        .where(users.c.availability == "online")
        .where(sa.or_(space_members.c.capacity.is_(None), open_load < space_members.c.capacity))
    )
    if team_id is not None:
        query = query.where(
            users.c.id.in_(
                sa.select(team_members.c.user_id).where(team_members.c.team_id == team_id)
            )
        )
    if prefer is not None:
        found = (await conn.execute(query.where(users.c.id == prefer))).scalar()
        if found is not None:
            return int(found)
    last_given = (
        sa.select(sa.func.max(assignments.c.id))
        .where(assignments.c.user_id == users.c.id)
        .scalar_subquery()
    )
    query = query.order_by(sa.func.coalesce(last_given, 0), users.c.id).limit(1)
    return (await conn.execute(query)).scalar()
