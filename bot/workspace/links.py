"""Linking a user to their own chat account with a one-time code (`/link CODE`)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import now
from bot.storage.tables import (
    channels,
    link_codes,
    organization_members,
    space_members,
    spaces,
    user_identities,
)

CODE_LIFETIME = timedelta(minutes=15)
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are typed on phones


def _hash(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


async def new_code(conn: AsyncConnection, user_id: int) -> str:
    code = "".join(secrets.choice(ALPHABET) for _ in range(8))
    await conn.execute(
        link_codes.insert().values(
            code_hash=_hash(code), user_id=user_id, expires_at=now() + CODE_LIFETIME
        )
    )
    return code


async def redeem(conn: AsyncConnection, code: str, channel_id: str, external_id: str) -> int | None:
    """Link the sender to the code's user; returns the user id, or None for a bad code."""
    row = (
        await conn.execute(
            sa.select(link_codes.c.user_id)
            .where(link_codes.c.code_hash == _hash(code))
            .where(link_codes.c.expires_at > now())
        )
    ).first()
    if row is None:
        return None
    await conn.execute(link_codes.delete().where(link_codes.c.code_hash == _hash(code)))
    await conn.execute(
        user_identities.delete()
        .where(user_identities.c.channel_id == channel_id)
        .where(user_identities.c.external_id == external_id)
    )
    await conn.execute(
        user_identities.insert().values(
            user_id=row.user_id, channel_id=channel_id, external_id=external_id
        )
    )
    return int(row.user_id)


async def linked_admin(conn: AsyncConnection, channel_id: str, external_id: str) -> int | None:
    """The user behind this chat account if they may administer the channel's space."""
    space = sa.select(channels.c.space_id).where(channels.c.id == channel_id).scalar_subquery()
    user = (
        await conn.execute(
            sa.select(user_identities.c.user_id)
            .where(user_identities.c.channel_id == channel_id)
            .where(user_identities.c.external_id == external_id)
        )
    ).scalar()
    if user is None:
        return None
    return int(user) if await may_administer(conn, space, user) else None


async def may_administer(conn: AsyncConnection, space: Any, user: int) -> bool:
    """A manager of the space or an admin of its organization."""
    manager = sa.select(space_members.c.user_id).where(
        space_members.c.space_id == space,
        space_members.c.user_id == user,
        space_members.c.role == "manager",
    )
    org_admin = (
        sa.select(organization_members.c.user_id)
        .join(spaces, spaces.c.organization_id == organization_members.c.organization_id)
        .where(
            spaces.c.id == space,
            organization_members.c.user_id == user,
            organization_members.c.role == "admin",
        )
    )
    return (await conn.execute(sa.union(manager, org_admin))).first() is not None
