"""`/api/v1/invitations`: someone who already has an account (through another organization)
joins this organization or space only by accepting, authenticated as themselves.

Adding their email never grafts them in nor shows this tenant anything of their record:
the inviter gets an invitation and a one-time code to pass on; the person posts the code
with a token of their own.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.api.auth import PRINCIPAL, create_token, hash_token
from bot.api.openapi import Routes
from bot.api.params import json_body, path_id
from bot.api.roles import administered, require
from bot.clock import iso, now
from bot.errors import Forbidden, NotFound
from bot.keys import DB
from bot.storage.tables import (
    invitations,
    organization_members,
    organizations,
    space_members,
    spaces,
    users,
)

CODE_PREFIX = "inv_"
LIFETIME = timedelta(days=7)
# the other answer of a POST that may invite instead of add
INVITED = {
    202: "invited: someone with an account in another organization accepts "
    "with the code (shown once)"
}


class InvitationCode(BaseModel):
    code: str = Field(min_length=1, max_length=200, description="the code the inviter passed on")


routes = Routes()


def _json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "email": row.email,
        "role": row.role,
        "space_id": row.space_id,
        "invited_by": row.invited_by,
        "status": "pending",
        "expires_at": iso(row.expires_at),
    }


async def user_with_email(conn: AsyncConnection, email: str) -> int | None:
    found = (await conn.execute(sa.select(users.c.id).where(users.c.email == email))).scalar()
    return None if found is None else int(found)


async def outsider(conn: AsyncConnection, user_id: int, org: int) -> bool:
    """True when the user belongs neither to the organization nor to any of its spaces."""
    inside = await conn.execute(
        sa.select(organization_members.c.user_id)
        .where(
            organization_members.c.organization_id == org,
            organization_members.c.user_id == user_id,
        )
        .union(
            sa.select(space_members.c.user_id)
            .join(spaces, spaces.c.id == space_members.c.space_id)
            .where(spaces.c.organization_id == org, space_members.c.user_id == user_id)
        )
    )
    return inside.first() is None


async def invite(
    conn: AsyncConnection,
    org: int,
    space_id: int | None,
    email: str,
    role: str,
    invited_by: int | None,
) -> dict[str, Any]:
    """The invitation and its code (shown once); it replaces a pending one for the same
    email and place, so a lost code is simply asked for again."""
    place = (
        invitations.c.space_id.is_(None) if space_id is None else invitations.c.space_id == space_id
    )
    await conn.execute(
        invitations.delete().where(
            invitations.c.organization_id == org,
            place,
            invitations.c.email == email,
            invitations.c.accepted_at.is_(None),
        )
    )
    code = CODE_PREFIX + secrets.token_urlsafe(32)
    row = (
        await conn.execute(
            invitations.insert()
            .values(
                organization_id=org,
                space_id=space_id,
                email=email,
                role=role,
                code_hash=hash_token(code),
                invited_by=invited_by,
                expires_at=now() + LIFETIME,
            )
            .returning(*invitations.c)
        )
    ).one()
    return {**_json(row), "code": code}


def _pending() -> sa.ColumnElement[bool]:
    return sa.and_(invitations.c.accepted_at.is_(None), invitations.c.expires_at > now())


async def _visible(conn: AsyncConnection, request: web.Request) -> sa.ColumnElement[bool]:
    """A manager's space's invitations; an organization admin's also the organization's."""
    principal = request[PRINCIPAL]
    mine = invitations.c.space_id == principal.space_id
    org = await administered(conn, principal)
    if org is None:
        return mine
    return sa.or_(
        mine, sa.and_(invitations.c.space_id.is_(None), invitations.c.organization_id == org)
    )


@routes.get(
    "/api/v1/invitations",
    "Pending invitations: the space's (managers), the organization's (its admins)",
)
async def list_invitations(request: web.Request) -> web.Response:
    """Pending invitations (codes are never shown again)."""
    require(request, "manager")
    async with request.app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(invitations)
            .where(await _visible(conn, request), _pending())
            .order_by(invitations.c.id)
        )
        items = [_json(r) for r in rows]
    return web.json_response({"items": items})


@routes.delete("/api/v1/invitations/{invitation_id}", "Withdraw a pending invitation")
async def withdraw(request: web.Request) -> web.Response:
    require(request, "manager")
    invitation_id = path_id(request, "invitation_id")
    async with request.app[DB].write() as conn:
        done = await conn.execute(
            invitations.delete().where(
                invitations.c.id == invitation_id,
                invitations.c.accepted_at.is_(None),
                await _visible(conn, request),
            )
        )
    if done.rowcount == 0:
        raise NotFound(f"no pending invitation {invitation_id} here")
    return web.Response(status=204)


@routes.post(
    "/api/v1/invitations/accept",
    "Accept an invitation with its code, as yourself; joining a space answers a "
    "token for it (shown once)",
    body=InvitationCode,
)
async def accept(request: web.Request) -> web.Response:
    """The invited person joins, with a token issued for them (by any of their spaces);
    joining a space gives them a token of that space (shown once)."""
    principal = request[PRINCIPAL]
    body = await json_body(request, InvitationCode)
    if principal.user_id is None:
        raise Forbidden("accept with a token issued for you; this one belongs to no user")
    db = request.app[DB]
    async with db.write() as conn:
        email = (
            await conn.execute(sa.select(users.c.email).where(users.c.id == principal.user_id))
        ).scalar_one()
        row = (
            await conn.execute(
                sa.select(invitations, (invitations.c.expires_at > now()).label("live")).where(
                    invitations.c.code_hash == hash_token(body.code.strip()),
                    invitations.c.email == email,
                    invitations.c.accepted_at.is_(None),
                )
            )
        ).first()
        if row is None:
            raise NotFound("no pending invitation for you with this code")
        if not row.live:
            raise NotFound("this invitation expired; ask for a new one")
        await conn.execute(
            invitations.update().where(invitations.c.id == row.id).values(accepted_at=now())
        )
        await conn.execute(
            db.insert(organization_members)
            .values(
                organization_id=row.organization_id,
                user_id=principal.user_id,
                role="member" if row.space_id is not None else row.role,
            )
            .on_conflict_do_nothing()
        )
        org_name = (
            await conn.execute(
                sa.select(organizations.c.name).where(organizations.c.id == row.organization_id)
            )
        ).scalar_one()
        joined: dict[str, Any] = {
            "organization": {"id": row.organization_id, "name": org_name},
            "space": None,
            "role": row.role,
            "token": None,
        }
        if row.space_id is not None:
            joined.update(await _join_space(conn, request, row.space_id, row.role))
    return web.json_response(joined)


async def _join_space(
    conn: AsyncConnection, request: web.Request, space_id: int, role: str
) -> dict[str, Any]:
    user_id = request[PRINCIPAL].user_id
    await conn.execute(
        request.app[DB]
        .insert(space_members)
        .values(space_id=space_id, user_id=user_id, role=role)
        .on_conflict_do_nothing()
    )
    held = (
        await conn.execute(
            sa.select(space_members.c.role).where(
                space_members.c.space_id == space_id, space_members.c.user_id == user_id
            )
        )
    ).scalar_one()  # someone added meanwhile keeps the role they have
    name = (
        await conn.execute(sa.select(spaces.c.name).where(spaces.c.id == space_id))
    ).scalar_one()
    token = await create_token(conn, space_id, user_id, "invitation", held)
    return {"space": {"id": space_id, "name": name}, "role": held, "token": token}
