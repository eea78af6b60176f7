"""Settings, for the space's managers and the organization's admins (an agent gets 403):
channels, Slack and Dialogflow, people and teams, custom fields, tags, shortcuts, surveys,
automations, broadcasts, business hours and away text, API tokens.

The page shows what is; every change is a form that calls the REST API as the viewer
(`dashboard.bridge`), so it is checked and done exactly as `chancenter` and the API do.
Each section refreshes itself after a change (`/app/{space}/settings/{section}`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp_jinja2
import sqlalchemy as sa
from aiohttp import web

from bot.keys import CHANNELS, DB
from bot.storage.tables import (
    api_tokens,
    automations,
    broadcast_recipients,
    broadcasts,
    channels,
    contact_tags,
    field_definitions,
    integrations,
    shortcuts,
    space_members,
    spaces,
    surveys,
    tags,
    team_members,
    teams,
    users,
    views,
)
from bot.workspace import channel_admin
from dashboard.session import SPACE, VIEWER, page

Reader = Callable[[Any, web.Request], Awaitable[dict[str, Any]]]
SECTIONS: dict[str, Reader] = {}


def section(name: str) -> Callable[[Reader], Reader]:
    def add(reader: Reader) -> Reader:
        SECTIONS[name] = reader
        return reader

    return add


def setup(app: web.Application) -> None:
    app.router.add_get("/app/{space}/settings", settings_page)
    app.router.add_get("/app/{space}/settings/{section}", one_section)


@page("manager")
@aiohttp_jinja2.template("settings.html")
async def settings_page(request: web.Request) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for name, reader in SECTIONS.items():
        shown[name] = await _read(request, reader)
    return {
        "viewer": request[VIEWER],
        "space": request[SPACE],
        "section": "settings",
        "kinds": sorted(request.app[CHANNELS].kinds),
        **shown,
    }


@page("manager")
async def one_section(request: web.Request) -> web.Response:
    name = request.match_info["section"]
    reader = SECTIONS.get(name)
    if reader is None:
        raise web.HTTPNotFound()
    context = {"space": request[SPACE], name: await _read(request, reader)}
    return aiohttp_jinja2.render_template(f"settings/_{name}.html", request, context)


async def _read(request: web.Request, reader: Reader) -> dict[str, Any]:
    if reader is _channels:  # the shared implementation reads with health
        return await reader(None, request)
    async with request.app[DB].read() as conn:
        return await reader(conn, request)


def _space(request: web.Request) -> int:
    return request[SPACE].space_id


@section("channels")
async def _channels(_: Any, request: web.Request) -> dict[str, Any]:
    return {"items": await channel_admin.list_channels(request.app, _space(request))}


@section("integrations")
async def _integrations(conn: Any, request: web.Request) -> dict[str, Any]:
    rows = await conn.execute(
        sa.select(integrations.c.kind, integrations.c.settings, integrations.c.error).where(
            integrations.c.space_id == _space(request)
        )
    )
    return {row.kind: row for row in rows}


@section("people")
async def _people(conn: Any, request: web.Request) -> dict[str, Any]:
    members = await conn.execute(
        sa.select(
            users.c.id, users.c.name, users.c.email, users.c.availability, space_members.c.role
        )
        .join(space_members, space_members.c.user_id == users.c.id)
        .where(space_members.c.space_id == _space(request))
        .order_by(users.c.name)
    )
    size = sa.func.count(team_members.c.user_id)
    groups = await conn.execute(
        sa.select(teams.c.id, teams.c.name, size.label("members"))
        .outerjoin(team_members, team_members.c.team_id == teams.c.id)
        .where(teams.c.space_id == _space(request))
        .group_by(teams.c.id, teams.c.name)
        .order_by(teams.c.name)
    )
    return {"members": members.all(), "teams": groups.all()}


@section("fields")
async def _fields(conn: Any, request: web.Request) -> dict[str, Any]:
    defined = await conn.execute(
        sa.select(field_definitions)
        .where(field_definitions.c.space_id == _space(request))
        .order_by(field_definitions.c.key)
    )
    carried = sa.func.count(contact_tags.c.contact_id)
    tagged = await conn.execute(
        sa.select(tags.c.name, carried.label("contacts"))
        .outerjoin(contact_tags, contact_tags.c.tag_id == tags.c.id)
        .where(tags.c.space_id == _space(request))
        .group_by(tags.c.id, tags.c.name)
        .order_by(tags.c.name)
    )
    return {"items": defined.all(), "tags": tagged.all()}


@section("shortcuts")
async def _shortcuts(conn: Any, request: web.Request) -> dict[str, Any]:
    rows = await conn.execute(
        sa.select(shortcuts)
        .where(shortcuts.c.space_id == _space(request))
        .where(
            sa.or_(shortcuts.c.user_id.is_(None), shortcuts.c.user_id == request[VIEWER].user_id)
        )
        .order_by(shortcuts.c.name)
    )
    return {"items": rows.all()}


@section("flows")
async def _flows(conn: Any, request: web.Request) -> dict[str, Any]:
    found_surveys = await conn.execute(
        sa.select(surveys.c.id, surveys.c.name)
        .where(surveys.c.space_id == _space(request))
        .order_by(surveys.c.name)
    )
    found_automations = await conn.execute(
        sa.select(
            automations.c.id,
            automations.c.name,
            automations.c.trigger,
            automations.c.enabled,
            automations.c.disabled_reason,
        )
        .where(automations.c.space_id == _space(request))
        .order_by(automations.c.name)
    )
    return {"surveys": found_surveys.all(), "automations": found_automations.all()}


@section("broadcasts")
async def _broadcasts(conn: Any, request: web.Request) -> dict[str, Any]:
    rows = (
        await conn.execute(
            sa.select(
                broadcasts.c.id,
                broadcasts.c.name,
                broadcasts.c.status,
                channels.c.name.label("channel"),
            )
            .join(channels, channels.c.id == broadcasts.c.channel_id)
            .where(broadcasts.c.space_id == _space(request))
            .order_by(broadcasts.c.id.desc())
            .limit(20)
        )
    ).all()
    counts: dict[int, dict[str, int]] = {row.id: {} for row in rows}
    if rows:
        tally = await conn.execute(
            sa.select(
                broadcast_recipients.c.broadcast_id,
                broadcast_recipients.c.status,
                sa.func.count(),
            )
            .where(broadcast_recipients.c.broadcast_id.in_(list(counts)))
            .group_by(broadcast_recipients.c.broadcast_id, broadcast_recipients.c.status)
        )
        for broadcast_id, status, n in tally:
            counts[broadcast_id][status] = n
    saved = await conn.execute(
        sa.select(views.c.id, views.c.name)
        .where(views.c.space_id == _space(request), views.c.user_id.is_(None))
        .order_by(views.c.name)
    )
    running = any(row.status in ("running", "scheduled") for row in rows)
    return {"items": rows, "counts": counts, "views": saved.all(), "running": running}


@section("hours")
async def _hours(conn: Any, request: web.Request) -> dict[str, Any]:
    row = (
        await conn.execute(
            sa.select(spaces.c.name, spaces.c.timezone, spaces.c.settings).where(
                spaces.c.id == _space(request)
            )
        )
    ).one()
    return {"name": row.name, "timezone": row.timezone, "settings": row.settings or {}}


@section("tokens")
async def _tokens(conn: Any, request: web.Request) -> dict[str, Any]:
    rows = await conn.execute(
        sa.select(
            api_tokens.c.id,
            api_tokens.c.name,
            api_tokens.c.role,
            api_tokens.c.revoked_at,
            users.c.name.label("user"),
        )
        .outerjoin(users, users.c.id == api_tokens.c.user_id)
        .where(api_tokens.c.space_id == _space(request))
        .order_by(api_tokens.c.id.desc())
    )
    return {"items": rows.all()}
