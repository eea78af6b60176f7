"""Creating organizations and spaces: the default one `serve` needs, and `init`'s."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.db import Database
from bot.storage.tables import (
    channels,
    organization_members,
    organizations,
    space_members,
    spaces,
    users,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpaceCreated:
    organization_id: int
    space_id: int
    webchat_channel_id: str | None


def new_channel_id(kind: str) -> str:
    return f"{kind[:8]}-{secrets.token_hex(6)}"


async def create_space(
    conn: AsyncConnection, org_name: str, space_name: str, *, default: bool, webchat: bool
) -> SpaceCreated:
    org_id = (
        await conn.execute(
            organizations.insert().values(name=org_name).returning(organizations.c.id)
        )
    ).scalar_one()
    space_id = (
        await conn.execute(
            spaces.insert()
            .values(organization_id=org_id, name=space_name, is_default=int(default))
            .returning(spaces.c.id)
        )
    ).scalar_one()
    channel_id = None
    if webchat:
        channel_id = new_channel_id("webchat")
        await conn.execute(
            channels.insert().values(
                id=channel_id, space_id=space_id, kind="webchat", name="Web chat", settings={}
            )
        )
    return SpaceCreated(org_id, space_id, channel_id)


async def ensure_default_space(db: Database, *, webchat: bool) -> int:
    """The default space's id, creating organization, space and web-chat channel on first run."""
    async with db.write() as conn:
        space_id = (
            await conn.execute(sa.select(spaces.c.id).where(spaces.c.is_default == 1))
        ).scalar()
        if space_id is not None:
            return int(space_id)
        created = await create_space(conn, "Default", "Default", default=True, webchat=webchat)
    log.info(
        "created the default space",
        extra={"space": created.space_id, "webchat_channel": created.webchat_channel_id},
    )
    return created.space_id


async def user_by_email(
    conn: AsyncConnection, name: str, email: str, slack_user_id: str | None = None
) -> int:
    """One user per email across organizations: someone may belong to several."""
    user_id = (await conn.execute(sa.select(users.c.id).where(users.c.email == email))).scalar()
    if user_id is None:
        user_id = (
            await conn.execute(
                users.insert()
                .values(name=name, email=email, slack_user_id=slack_user_id)
                .returning(users.c.id)
            )
        ).scalar_one()
    return int(user_id)


async def add_admin(conn: AsyncConnection, created: SpaceCreated, name: str, email: str) -> int:
    """An admin of the space's organization and a manager of the space (reusing the user)."""
    user_id = await user_by_email(conn, name, email)
    await conn.execute(
        organization_members.insert().values(
            organization_id=created.organization_id, user_id=user_id, role="admin"
        )
    )
    await conn.execute(
        space_members.insert().values(space_id=created.space_id, user_id=user_id, role="manager")
    )
    return user_id
