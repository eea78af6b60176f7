"""Who may do what through the API: a token carries one role in one space, and its user
may hold roles in several organizations, which never lend one another authority."""

from __future__ import annotations

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.api.auth import PRINCIPAL, RANK, Principal, ceiling
from bot.errors import Forbidden, NotFound
from bot.storage.tables import organization_members, space_members, spaces


def require(request: web.Request, role: str) -> None:
    have = request[PRINCIPAL].role
    if RANK.get(have, 0) < RANK[role]:
        raise Forbidden(f"this needs a {role} token or higher; yours is {have}")


def require_billing(request: web.Request) -> None:
    """Usage is the subscription's: its organization's admins and billing admins read it
    (the token acts as admin or billing only while its user is one of those)."""
    have = request[PRINCIPAL].role
    if have not in ("billing", "admin"):
        raise Forbidden(f"usage is read with a billing or admin token; yours is {have}")


async def highest_role(conn: AsyncConnection, space_id: int, user_id: int, role: str) -> str | None:
    """The highest role a `role` token issued for this user may carry in the space (it
    never acts above it), None if they may hold no such token; NotFound for strangers."""
    org = await organization_of(conn, space_id)
    member_role = (
        await conn.execute(
            sa.select(space_members.c.role).where(
                space_members.c.space_id == space_id, space_members.c.user_id == user_id
            )
        )
    ).scalar()
    org_role = (
        await conn.execute(
            sa.select(organization_members.c.role).where(
                organization_members.c.organization_id == org,
                organization_members.c.user_id == user_id,
            )
        )
    ).scalar()
    if member_role is None and (role != "billing" or org_role is None):
        raise NotFound(f"no user {user_id} in this space")
    return ceiling(member_role, org_role, billing=role == "billing")


async def organization_of(conn: AsyncConnection, space_id: int) -> int:
    return int(
        (
            await conn.execute(sa.select(spaces.c.organization_id).where(spaces.c.id == space_id))
        ).scalar_one()
    )


async def administered(conn: AsyncConnection, principal: Principal) -> int | None:
    """The token's organization if it speaks for it: an admin token whose user is an admin
    there (a token without a user is the organization's own); else None."""
    if RANK.get(principal.role, 0) < RANK["admin"]:
        return None
    org = await organization_of(conn, principal.space_id)
    if principal.user_id is None:
        return org
    role = (
        await conn.execute(
            sa.select(organization_members.c.role).where(
                organization_members.c.organization_id == org,
                organization_members.c.user_id == principal.user_id,
            )
        )
    ).scalar()
    return org if role == "admin" else None


async def org_admin(request: web.Request, conn: AsyncConnection) -> int:
    """The caller's organization, or Forbidden if they do not administer it."""
    require(request, "admin")
    org = await administered(conn, request[PRINCIPAL])
    if org is None:
        raise Forbidden("only the organization's admins do this")
    return org


async def may_edit_person(conn: AsyncConnection, principal: Principal, user_id: int) -> bool:
    """A person's own record (name, Slack id, availability) is shared by every organization
    they belong to, so only they, or an admin of each of those organizations, change it."""
    if principal.user_id == user_id:
        return True
    if RANK.get(principal.role, 0) < RANK["admin"]:
        return False
    theirs = set(
        (
            await conn.execute(
                sa.select(organization_members.c.organization_id)
                .where(organization_members.c.user_id == user_id)
                .union(
                    sa.select(spaces.c.organization_id)
                    .join(space_members, space_members.c.space_id == spaces.c.id)
                    .where(space_members.c.user_id == user_id)
                )
            )
        ).scalars()
    )
    if principal.user_id is None:
        return theirs <= {await organization_of(conn, principal.space_id)}
    mine = set(
        (
            await conn.execute(
                sa.select(organization_members.c.organization_id).where(
                    organization_members.c.user_id == principal.user_id,
                    organization_members.c.role == "admin",
                )
            )
        ).scalars()
    )
    return theirs <= mine
