"""`/api/v1` for the people of a space: users (members) and teams.

A user's record (name, email, Slack id, availability) is shared by every organization they
belong to; a space edits only its membership of them (role, capacity, teams)."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.api.auth import PRINCIPAL
from bot.api.invitations import INVITED, invite, outsider, user_with_email
from bot.api.openapi import Routes
from bot.api.org import EMAIL
from bot.api.params import json_body, path_id, space_row
from bot.api.roles import RANK, may_edit_person, organization_of, require
from bot.errors import Forbidden, InvalidPayload, NotFound
from bot.keys import DB
from bot.storage.tables import (
    contacts,
    organization_members,
    space_members,
    team_members,
    teams,
    users,
)
from bot.workspace.bootstrap import user_by_email
from bot.workspace.triggers import changed


class NewUser(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=EMAIL, max_length=320)
    role: Literal["manager", "agent"] = "agent"
    slack_user_id: str | None = Field(None, max_length=64)


class UserChange(BaseModel):
    availability: Literal["online", "away", "offline"] | None = None
    role: Literal["manager", "agent"] | None = None
    slack_user_id: str | None = Field(None, max_length=64)
    capacity: int | None = Field(
        None, ge=0, le=10_000, description="most open conversations at once; 0: no limit"
    )


class NewTeam(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    slack_channel: str | None = Field(
        None, pattern=r"^[CG][A-Z0-9]{2,30}$", description="the team's own Slack inbox"
    )


class TeamChange(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=100)
    slack_channel: str | None = Field(None, pattern=r"^[CG][A-Z0-9]{2,30}$")


class Member(BaseModel):
    user_id: int = Field(ge=1, le=2**63 - 1)


routes = Routes()


async def _member(conn: AsyncConnection, space_id: int, user_id: int) -> Any:
    row = (
        await conn.execute(
            sa.select(users, space_members.c.role, space_members.c.capacity)
            .join(space_members, space_members.c.user_id == users.c.id)
            .where(space_members.c.space_id == space_id)
            .where(users.c.id == user_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"no user {user_id} in this space")
    return row


def _user_json(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "email": r.email,
        "role": r.role,
        "availability": r.availability,
        "slack_user_id": r.slack_user_id,
        "capacity": r.capacity,
    }


@routes.get("/api/v1/users", "The space's users and their roles")
async def list_users(request: web.Request) -> web.Response:
    async with request.app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(users, space_members.c.role, space_members.c.capacity)
            .join(space_members, space_members.c.user_id == users.c.id)
            .where(space_members.c.space_id == request[PRINCIPAL].space_id)
            .order_by(users.c.id)
        )
        items = [_user_json(r) for r in rows]
    return web.json_response({"items": items})


@routes.post("/api/v1/users", "Add a user to the space", body=NewUser, status=201, more=INVITED)
async def add_user(request: web.Request) -> web.Response:
    """Add someone to the space: a new email or a member of this organization at once (201);
    a person with an account through another organization only by invitation (202), with
    nothing of their record in the answer."""
    require(request, "manager")
    new = await json_body(request, NewUser)
    principal = request[PRINCIPAL]
    space_id = principal.space_id
    async with request.app[DB].write() as conn:
        org = await organization_of(conn, space_id)
        known = await user_with_email(conn, new.email)
        if known is not None:
            already = (
                await conn.execute(
                    sa.select(space_members.c.user_id).where(
                        space_members.c.space_id == space_id, space_members.c.user_id == known
                    )
                )
            ).first()
            if already is not None:
                raise InvalidPayload(f"{new.email} is already in this space")
            if await outsider(conn, known, org):
                invited = await invite(conn, org, space_id, new.email, new.role, principal.user_id)
                return web.json_response(invited, status=202)
        user_id = await user_by_email(conn, new.name, new.email, new.slack_user_id)
        await conn.execute(
            request.app[DB]
            .insert(organization_members)
            .values(organization_id=org, user_id=user_id, role="member")
            .on_conflict_do_nothing()
        )
        await conn.execute(
            space_members.insert().values(space_id=space_id, user_id=user_id, role=new.role)
        )
        row = await _member(conn, space_id, user_id)
    return web.json_response(_user_json(row), status=201)


@routes.patch(
    "/api/v1/users/{user_id}",
    "Change the space's membership (role, capacity: managers) or the person's "
    "availability and Slack id (themselves, or an admin of every organization they "
    "belong to; an agent token only its own availability)",
    body=UserChange,
)
async def change_user(request: web.Request) -> web.Response:
    """Managers change the space's membership (role, capacity). The person's own record
    (availability, Slack id) changes only by them (an agent token: availability only) or by
    an admin of every organization they belong to. Non-members are 404 (not 403)."""
    principal = request[PRINCIPAL]
    change = await json_body(request, UserChange)
    user_id = path_id(request, "user_id")
    personal = change.model_dump(exclude_none=True, include={"availability", "slack_user_id"})
    membership: dict[str, Any] = change.model_dump(exclude_none=True, include={"role"})
    if change.capacity is not None:
        membership["capacity"] = change.capacity or None
    async with request.app[DB].write() as conn:
        await _member(conn, principal.space_id, user_id)
        if membership:
            require(request, "manager")
        if personal:
            if not await may_edit_person(conn, principal, user_id):
                raise Forbidden(
                    "someone's availability and Slack id change only by them, or by an admin "
                    "of every organization they belong to"
                )
            agent = RANK.get(principal.role, 0) < RANK["manager"]
            if user_id == principal.user_id and agent and set(personal) != {"availability"}:
                raise Forbidden("an agent token changes only its own availability")
            await conn.execute(users.update().where(users.c.id == user_id).values(**personal))
        if membership:
            await conn.execute(
                space_members.update()
                .where(
                    space_members.c.space_id == principal.space_id,
                    space_members.c.user_id == user_id,
                )
                .values(**membership)
            )
        row = await _member(conn, principal.space_id, user_id)
    return web.json_response(_user_json(row))


@routes.get("/api/v1/teams", "Teams and their members")
async def list_teams(request: web.Request) -> web.Response:
    async with request.app[DB].read() as conn:
        rows = (
            await conn.execute(
                sa.select(teams)
                .where(teams.c.space_id == request[PRINCIPAL].space_id)
                .order_by(teams.c.id)
            )
        ).all()
        members = (
            await conn.execute(
                sa.select(team_members).where(team_members.c.team_id.in_([r.id for r in rows]))
            )
        ).all()
    return web.json_response(
        {
            "items": [
                {
                    "id": r.id,
                    "name": r.name,
                    "slack_channel": r.slack_channel,
                    "members": [m.user_id for m in members if m.team_id == r.id],
                }
                for r in rows
            ]
        }
    )


@routes.post("/api/v1/teams", "Create a team", body=NewTeam, status=201)
async def create_team(request: web.Request) -> web.Response:
    require(request, "manager")
    new = await json_body(request, NewTeam)
    async with request.app[DB].write() as conn:
        await _name_free(conn, request[PRINCIPAL].space_id, new.name)
        team_id = (
            await conn.execute(
                teams.insert()
                .values(
                    space_id=request[PRINCIPAL].space_id,
                    name=new.name,
                    slack_channel=new.slack_channel,
                )
                .returning(teams.c.id)
            )
        ).scalar_one()
    return web.json_response({"id": team_id, **new.model_dump(), "members": []}, status=201)


@routes.patch(
    "/api/v1/teams/{team_id}",
    "Rename a team or give it its own Slack inbox channel",
    body=TeamChange,
)
async def change_team(request: web.Request) -> web.Response:
    require(request, "manager")
    change = await json_body(request, TeamChange)
    space_id, team_id = request[PRINCIPAL].space_id, path_id(request, "team_id")
    values = change.model_dump(exclude_unset=True)
    if values.get("name", "") is None:
        raise InvalidPayload("name: a team keeps a name")
    async with request.app[DB].write() as conn:
        await _team(conn, space_id, team_id)
        if change.name is not None:
            await _name_free(conn, space_id, change.name, team_id)
        if values:
            await conn.execute(teams.update().where(teams.c.id == team_id).values(**values))
        row = await _team(conn, space_id, team_id)
    return web.json_response({"id": row.id, "name": row.name, "slack_channel": row.slack_channel})


async def _name_free(
    conn: AsyncConnection, space_id: int, name: str, team_id: int | None = None
) -> None:
    taken = (
        await conn.execute(
            sa.select(teams.c.id).where(
                teams.c.space_id == space_id, teams.c.name == name, teams.c.id != (team_id or 0)
            )
        )
    ).first()
    if taken is not None:
        raise InvalidPayload(f"a team named {name!r} already exists")


async def _team(conn: AsyncConnection, space_id: int, team_id: int) -> Any:
    return await space_row(conn, teams, space_id, team_id, "team")


@routes.post("/api/v1/teams/{team_id}/members", "Add a user to a team", body=Member)
async def add_team_member(request: web.Request) -> web.Response:
    require(request, "manager")
    body = await json_body(request, Member)
    space_id, team_id = request[PRINCIPAL].space_id, path_id(request, "team_id")
    async with request.app[DB].write() as conn:
        await _team(conn, space_id, team_id)
        await _member(conn, space_id, body.user_id)
        await conn.execute(
            request.app[DB]
            .insert(team_members)
            .values(team_id=team_id, user_id=body.user_id)
            .on_conflict_do_nothing()
        )
    return web.json_response({"team_id": team_id, "user_id": body.user_id})


@routes.delete("/api/v1/teams/{team_id}", "Delete a team")
async def delete_team(request: web.Request) -> web.Response:
    require(request, "manager")
    space_id, team_id = request[PRINCIPAL].space_id, path_id(request, "team_id")
    async with request.app[DB].write() as conn:
        await _team(conn, space_id, team_id)
        # contacts name their team without a foreign key: none keeps a deleted one
        await conn.execute(
            contacts.update().where(contacts.c.team_id == team_id).values(team_id=None)
        )
        await conn.execute(teams.delete().where(teams.c.id == team_id))
        await changed(conn, space_id)  # automations may name it
    return web.Response(status=204)


@routes.delete("/api/v1/teams/{team_id}/members/{user_id}", "Take a user out of a team")
async def remove_team_member(request: web.Request) -> web.Response:
    require(request, "manager")
    space_id, team_id = request[PRINCIPAL].space_id, path_id(request, "team_id")
    async with request.app[DB].write() as conn:
        await _team(conn, space_id, team_id)
        await conn.execute(
            team_members.delete().where(
                team_members.c.team_id == team_id,
                team_members.c.user_id == path_id(request, "user_id"),
            )
        )
    return web.Response(status=204)
