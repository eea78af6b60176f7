"""One conversation: its transcript, the contact beside it, and what an agent does to it
(reply, note, claim, assign, back to the bot, close): the same acts as from Slack or the
API (`bot.workspace.agent_work`), so the Slack thread shows them too.
"""

from __future__ import annotations

import secrets
from typing import Any

import aiohttp_jinja2
import sqlalchemy as sa
from aiohttp import web

from bot.api.params import message_json
from bot.api.views import visible
from bot.errors import InvalidPayload
from bot.keys import DB, SETTINGS
from bot.model import TextPart
from bot.storage.tables import (
    channels,
    contacts,
    conversations,
    field_definitions,
    identities,
    messages,
    shortcuts,
    space_members,
    teams,
    users,
)
from bot.workspace import conversations as ops
from bot.workspace.agent_work import AgentWork
from bot.workspace.contacts import fields_of, shown, tags_of
from dashboard.session import SPACE, VIEWER, number, page

TRANSCRIPT = 200  # the newest messages shown
ONE = "/app/{space}/conversations/{conversation}"


def setup(app: web.Application) -> None:
    app.router.add_get(ONE, conversation_page)
    app.router.add_get(ONE + "/messages", transcript)
    for act in ("reply", "note", "claim", "assign", "bot", "close"):
        app.router.add_post(f"{ONE}/{act}", act_on)


def _conversation_id(request: web.Request) -> int:
    found = number(request.match_info["conversation"])
    if found is None:
        raise web.HTTPNotFound()
    return found


async def _transcript(conn: Any, request: web.Request, conversation_id: int) -> dict[str, Any]:
    space_id = request[SPACE].space_id
    conversation = await ops.get(conn, conversation_id, space_id)
    rows = (
        await conn.execute(
            sa.select(messages, users.c.name.label("author"))
            .outerjoin(users, users.c.id == messages.c.sender_user_id)
            .where(messages.c.conversation_id == conversation_id)
            .order_by(messages.c.id.desc())
            .limit(TRANSCRIPT)
        )
    ).all()
    key = request.app[SETTINGS].signing_key()
    listed = [{**message_json(r, key), "author": r.author} for r in reversed(rows)]
    return {"conversation": conversation, "messages": listed}


async def _contact(conn: Any, space_id: int, contact_id: int) -> dict[str, Any]:
    contact = (await conn.execute(sa.select(contacts).where(contacts.c.id == contact_id))).one()
    known = await conn.execute(
        sa.select(identities.c.external_id, channels.c.kind, channels.c.name)
        .join(channels, channels.c.id == identities.c.channel_id)
        .where(identities.c.contact_id == contact_id)
    )
    past = await conn.execute(
        sa.select(conversations.c.id, conversations.c.created_at, conversations.c.status)
        .where(conversations.c.contact_id == contact_id, conversations.c.space_id == space_id)
        .order_by(conversations.c.id.desc())
        .limit(20)
    )
    values = await fields_of(conn, contact_id)
    defined = await conn.execute(
        sa.select(field_definitions)
        .where(field_definitions.c.space_id == space_id)
        .order_by(field_definitions.c.key)
    )
    return {
        "contact": contact,
        "identities": known.all(),
        "fields": [
            {
                "key": d.key,
                "label": d.label or d.key,
                "type": d.type,
                "options": d.options or [],
                "value": values.get(d.key),
                "shown": shown(values.get(d.key)),
            }
            for d in defined
        ],
        "tags": await tags_of(conn, contact_id),
        "past": past.all(),
    }


@page()
@aiohttp_jinja2.template("conversation.html")
async def conversation_page(request: web.Request) -> dict[str, Any]:
    space, viewer = request[SPACE], request[VIEWER]
    conversation_id = _conversation_id(request)
    async with request.app[DB].read() as conn:
        shown = await _transcript(conn, request, conversation_id)
        contact = await _contact(conn, space.space_id, shown["conversation"].contact_id)
        people = (
            await conn.execute(
                sa.select(users.c.id, users.c.name)
                .join(space_members, space_members.c.user_id == users.c.id)
                .where(space_members.c.space_id == space.space_id)
                .order_by(users.c.name)
            )
        ).all()
        team_rows = (
            await conn.execute(
                sa.select(teams.c.id, teams.c.name)
                .where(teams.c.space_id == space.space_id)
                .order_by(teams.c.name)
            )
        ).all()
        quick = (
            await conn.execute(
                sa.select(shortcuts.c.id, shortcuts.c.name)
                .where(shortcuts.c.space_id == space.space_id)
                .where(visible(shortcuts, viewer.user_id))
                .order_by(shortcuts.c.name)
            )
        ).all()
    return {
        "viewer": viewer,
        "space": space,
        **shown,
        **contact,
        "people": people,
        "teams": team_rows,
        "shortcuts": quick,
        "draft_key": secrets.token_urlsafe(12),
    }


@page()
async def transcript(request: web.Request) -> web.Response:
    return await _transcript_response(request, _conversation_id(request))


async def _transcript_response(request: web.Request, conversation_id: int) -> web.Response:
    async with request.app[DB].read() as conn:
        shown = await _transcript(conn, request, conversation_id)
    context = {"space": request[SPACE], "viewer": request[VIEWER], **shown}
    return aiohttp_jinja2.render_template("_transcript.html", request, context)


@page()
async def act_on(request: web.Request) -> web.StreamResponse:
    """Each act answers with the fresh transcript (htmx swaps it in), or, for a browser
    without JavaScript, a redirect back to the page."""
    space, viewer = request[SPACE], request[VIEWER]
    conversation_id = _conversation_id(request)
    act = request.path.rsplit("/", 1)[1]
    form = await request.post()
    work = AgentWork(request.app, space.space_id)
    if act in ("reply", "note"):
        text = str(form.get("text", "")).strip()
        shortcut = str(form.get("shortcut", ""))
        shortcut_id = number(shortcut)
        if not text and shortcut_id is None:
            raise InvalidPayload("write something first")
        if len(text) > 10_000:
            raise InvalidPayload("that is longer than 10,000 characters")
        key = f"dashboard:{viewer.user_id}:{str(form.get('key', ''))[:40]}"
        if act == "note":
            await work.note(conversation_id, viewer.user_id, text, key)
        else:
            parts = [TextPart(text=text)] if text else []
            await work.reply(conversation_id, viewer.user_id, parts, key, shortcut_id, claim=True)
    elif act == "claim":
        await work.claim(conversation_id, viewer.user_id)
    elif act == "assign":
        await _assign(work, conversation_id, viewer.user_id, str(form.get("to", "")))
    elif act == "bot":
        await work.hand_back(conversation_id)
    else:
        await work.close(conversation_id)
    if "HX-Request" not in request.headers:
        raise web.HTTPSeeOther(f"/app/{space.space_id}/conversations/{conversation_id}")
    return await _transcript_response(request, conversation_id)


async def _assign(work: AgentWork, conversation_id: int, by: int, to: str) -> None:
    """`user:ID`, `team:ID`, or `nobody`."""
    kind, _, raw = to.partition(":")
    target = number(raw)
    if kind == "user" and target is not None:
        await work.assign(conversation_id, target, by, take=True)
    elif kind == "team" and target is not None:
        await work.assign_team(conversation_id, target, by)
    elif to == "nobody":
        await work.assign(conversation_id, None, by)
    else:
        raise InvalidPayload("choose a person or a team")
