"""`/api/v1` for the organization: its members, its spaces, and the usage billing sees.

A person may belong to several organizations; one organization's admins manage their
membership here, never the person's record nor their other organizations.
"""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.api.auth import PRINCIPAL, create_token
from bot.api.invitations import INVITED, invite, outsider, user_with_email
from bot.api.openapi import Routes
from bot.api.params import json_body, path_id
from bot.api.roles import org_admin, organization_of, require, require_billing
from bot.clock import now
from bot.errors import InvalidPayload, NotFound
from bot.keys import DB
from bot.storage.tables import (
    api_tokens,
    channels,
    messages,
    organization_members,
    organizations,
    space_members,
    spaces,
    team_members,
    teams,
    users,
)
from bot.workspace.bootstrap import user_by_email

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class NewOrgMember(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=EMAIL, max_length=320)
    role: Literal["admin", "billing_admin", "member"] = "member"


class OrgRole(BaseModel):
    role: Literal["admin", "billing_admin", "member"]


class NewSpace(BaseModel):
    name: str = Field(min_length=1, max_length=200)


routes = Routes()


@routes.get("/api/v1/spaces", "The organization's spaces (organization admins)")
async def list_spaces(request: web.Request) -> web.Response:
    """The organization's spaces (organization admins only)."""
    async with request.app[DB].read() as conn:
        org = await org_admin(request, conn)
        rows = await conn.execute(
            sa.select(spaces).where(spaces.c.organization_id == org).order_by(spaces.c.id)
        )
        items = [{"id": r.id, "name": r.name, "timezone": r.timezone} for r in rows]
    return web.json_response({"items": items})


@routes.post(
    "/api/v1/spaces", "Create a space; answers an admin token for it", body=NewSpace, status=201
)
async def create_space(request: web.Request) -> web.Response:
    """A new space in the caller's organization, with a manager token for it (shown once)."""
    new = await json_body(request, NewSpace)
    principal = request[PRINCIPAL]
    async with request.app[DB].write() as conn:
        org = await org_admin(request, conn)
        space_id = (
            await conn.execute(
                spaces.insert().values(organization_id=org, name=new.name).returning(spaces.c.id)
            )
        ).scalar_one()
        if principal.user_id is not None:
            await conn.execute(
                space_members.insert().values(
                    space_id=space_id, user_id=principal.user_id, role="manager"
                )
            )
        token = await create_token(conn, space_id, principal.user_id, f"{new.name} admin", "admin")
    return web.json_response({"id": space_id, "name": new.name, "token": token}, status=201)


def _month() -> sa.ColumnElement[str]:
    return sa.func.substr(sa.cast(messages.c.created_at, sa.String), 1, 7)


@routes.get(
    "/api/v1/usage", "The space's messages per month and channel (managers, admins, billing)"
)
async def usage(request: web.Request) -> web.Response:
    """The space's messages per month and channel: its managers' report, and billing's."""
    if request[PRINCIPAL].role != "billing":
        require(request, "manager")
    month = _month()
    async with request.app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(
                month.label("month"),
                channels.c.id,
                channels.c.kind,
                messages.c.direction,
                sa.func.count().label("n"),
            )
            .join(channels, channels.c.id == messages.c.channel_id)
            .where(messages.c.space_id == request[PRINCIPAL].space_id)
            .group_by(month, channels.c.id, channels.c.kind, messages.c.direction)
            .order_by(month, channels.c.id)
        )
        table: dict[tuple[str, str], dict[str, Any]] = {}
        for r in rows:
            entry = table.setdefault(
                (r.month, r.id),
                {"month": r.month, "channel_id": r.id, "kind": r.kind, "in": 0, "out": 0},
            )
            entry[r.direction] = r.n
    return web.json_response({"items": list(table.values())})


@routes.get(
    "/api/v1/organization/usage",
    "The subscription's figures: the organization's spaces, members and channels, "
    "and messages per month and space (billing and admin tokens)",
)
async def organization_usage(request: web.Request) -> web.Response:
    """The subscription's figures: the organization's spaces, members (seats) and channels,
    and its messages per month and space, every space's (billing and admin tokens)."""
    require_billing(request)
    month = _month()
    async with request.app[DB].read() as conn:
        org = await organization_of(conn, request[PRINCIPAL].space_id)
        in_org = sa.select(spaces.c.id).where(spaces.c.organization_id == org)
        seats = sa.select(organization_members.c.user_id).where(
            organization_members.c.organization_id == org
        )
        seats = seats.union(
            sa.select(space_members.c.user_id).where(space_members.c.space_id.in_(in_org))
        )
        counts = (
            await conn.execute(
                sa.select(
                    sa.select(sa.func.count()).select_from(in_org.subquery()).scalar_subquery(),
                    sa.select(sa.func.count()).select_from(seats.subquery()).scalar_subquery(),
                    sa.select(sa.func.count())
                    .where(channels.c.space_id.in_(in_org))
                    .scalar_subquery(),
                )
            )
        ).one()
        rows = await conn.execute(
            sa.select(
                month.label("month"), messages.c.space_id, messages.c.direction, sa.func.count()
            )
            .where(messages.c.space_id.in_(in_org))
            .group_by(month, messages.c.space_id, messages.c.direction)
            .order_by(month, messages.c.space_id)
        )
        table: dict[tuple[str, int], dict[str, Any]] = {}
        for m, space_id, direction, n in rows:
            entry = table.setdefault(
                (m, space_id), {"month": m, "space_id": space_id, "in": 0, "out": 0}
            )
            entry[direction] = n
    spaces_n, members_n, channels_n = counts
    return web.json_response(
        {
            "organization_id": org,
            "spaces": spaces_n,
            "members": members_n,
            "channels": channels_n,
            "items": list(table.values()),
        }
    )


def _org_member_json(r: Any) -> dict[str, Any]:
    return {"user_id": r.id, "name": r.name, "email": r.email, "role": r.role}


async def _org_members(conn: AsyncConnection, org: int, user_id: int | None = None) -> list[Any]:
    query = (
        sa.select(users.c.id, users.c.name, users.c.email, organization_members.c.role)
        .join(organization_members, organization_members.c.user_id == users.c.id)
        .where(organization_members.c.organization_id == org)
        .order_by(users.c.id)
    )
    if user_id is not None:
        query = query.where(users.c.id == user_id)
    return list((await conn.execute(query)).all())


@routes.get("/api/v1/organization", "The organization and its members (organization admins)")
async def get_organization(request: web.Request) -> web.Response:
    async with request.app[DB].read() as conn:
        org = await org_admin(request, conn)
        name = (
            await conn.execute(sa.select(organizations.c.name).where(organizations.c.id == org))
        ).scalar_one()
        members = [_org_member_json(r) for r in await _org_members(conn, org)]
    return web.json_response({"id": org, "name": name, "members": members})


@routes.post(
    "/api/v1/organization/members",
    "Add someone to the organization (admin, billing_admin or member)",
    body=NewOrgMember,
    status=201,
    more=INVITED,
)
async def add_org_member(request: web.Request) -> web.Response:
    """Someone joins the organization: a new email at once (201); a person who already has
    an account through another organization is invited and must accept (202)."""
    new = await json_body(request, NewOrgMember)
    async with request.app[DB].write() as conn:
        org = await org_admin(request, conn)
        known = await user_with_email(conn, new.email)
        if known is not None and await _org_members(conn, org, known):
            raise InvalidPayload(f"{new.email} is already in this organization")
        if known is not None and await outsider(conn, known, org):
            invited = await invite(conn, org, None, new.email, new.role, request[PRINCIPAL].user_id)
            return web.json_response(invited, status=202)
        user_id = await user_by_email(conn, new.name, new.email)
        await conn.execute(
            organization_members.insert().values(
                organization_id=org, user_id=user_id, role=new.role
            )
        )
        (row,) = await _org_members(conn, org, user_id)
    return web.json_response(_org_member_json(row), status=201)


@routes.patch(
    "/api/v1/organization/members/{user_id}", "Change a member's organization role", body=OrgRole
)
async def change_org_member(request: web.Request) -> web.Response:
    change = await json_body(request, OrgRole)
    user_id = path_id(request, "user_id")
    async with request.app[DB].write() as conn:
        org = await org_admin(request, conn)
        await _keep_an_admin(conn, org, user_id, change.role)
        await conn.execute(
            organization_members.update()
            .where(
                organization_members.c.organization_id == org,
                organization_members.c.user_id == user_id,
            )
            .values(role=change.role)
        )
        (row,) = await _org_members(conn, org, user_id)
    return web.json_response(_org_member_json(row))


@routes.delete(
    "/api/v1/organization/members/{user_id}",
    "Remove someone from the organization and its spaces",
)
async def remove_org_member(request: web.Request) -> web.Response:
    """Out of the organization and all its spaces, teams and tokens; the user's other
    organizations are untouched."""
    user_id = path_id(request, "user_id")
    async with request.app[DB].write() as conn:
        org = await org_admin(request, conn)
        await _keep_an_admin(conn, org, user_id, None)
        in_org = sa.select(spaces.c.id).where(spaces.c.organization_id == org)
        await conn.execute(
            team_members.delete().where(
                team_members.c.user_id == user_id,
                team_members.c.team_id.in_(
                    sa.select(teams.c.id).where(teams.c.space_id.in_(in_org))
                ),
            )
        )
        await conn.execute(
            space_members.delete().where(
                space_members.c.user_id == user_id, space_members.c.space_id.in_(in_org)
            )
        )
        # automations that assign to them are checked again (and disabled, saying why)
        await conn.execute(
            spaces.update()
            .where(spaces.c.organization_id == org)
            .values(automations_version=spaces.c.automations_version + 1)
        )
        # their tokens of these spaces would otherwise still act as them here
        await conn.execute(
            api_tokens.update()
            .where(
                api_tokens.c.user_id == user_id,
                api_tokens.c.space_id.in_(in_org),
                api_tokens.c.revoked_at.is_(None),
            )
            .values(revoked_at=now())
        )
        await conn.execute(
            organization_members.delete().where(
                organization_members.c.organization_id == org,
                organization_members.c.user_id == user_id,
            )
        )
    return web.Response(status=204)


async def _keep_an_admin(conn: AsyncConnection, org: int, user_id: int, role: str | None) -> None:
    members = await _org_members(conn, org)
    if not any(m.id == user_id for m in members):
        raise NotFound(f"no user {user_id} in this organization")
    admins = {m.id for m in members if m.role == "admin"}
    if role != "admin" and admins == {user_id}:
        raise InvalidPayload("an organization keeps at least one admin; promote another first")
