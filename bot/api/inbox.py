"""`/api/v1/conversations`: the messaging inbox, filtered like the contacts (views too),
one conversation, and its messages with who sent each."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp import web

from bot.api.auth import PRINCIPAL
from bot.api.params import _int_query, _iso, _limit, _path_id, known_query, message_json
from bot.api.views import _view_filter
from bot.errors import InvalidPayload, NotFound
from bot.keys import DB, SETTINGS
from bot.storage.tables import contacts, conversations, messages
from bot.workspace import contacts as contact_ops
from bot.workspace.filters import compile_filter

CHOICES = {"status": ("open", "closed"), "handler": ("bot", "flow", "waiting", "agent")}
QUERY = ("status", "handler", "channel_id", "contact_id", "assignee_id", "team_id", "view_id")


async def list_conversations(request: web.Request) -> web.Response:
    """Newest first, keyset pagination with `?before=<id>`; filters: `status`, `handler`
    (`waiting`: the handover queue), `channel_id`, `contact_id`, `assignee_id` and
    `team_id` (`0`: none), `view_id` (the conversations of the view's contacts)."""
    known_query(request, *QUERY, "before", "limit")
    principal = request[PRINCIPAL]
    query = (
        sa.select(conversations, contacts.c.name.label("contact_name"))
        .join(contacts, contacts.c.id == conversations.c.contact_id)
        .where(conversations.c.space_id == principal.space_id)
        .order_by(conversations.c.id.desc())
        .limit(_limit(request))
    )
    for name, allowed in CHOICES.items():
        if (value := request.query.get(name)) is not None:
            if value not in allowed:
                raise InvalidPayload(f"{name} must be one of {', '.join(allowed)}")
            if name == "status":  # closed_at: closed, even while its satisfaction survey waits
                closed = sa.or_(
                    conversations.c.status == "closed", conversations.c.closed_at.is_not(None)
                )
                query = query.where(closed if value == "closed" else ~closed)
            else:
                query = query.where(conversations.c[name] == value)
    if (channel_id := request.query.get("channel_id")) is not None:
        query = query.where(conversations.c.channel_id == channel_id)
    if (contact_id := _int_query(request, "contact_id")) is not None:
        query = query.where(conversations.c.contact_id == contact_id)
    for name in ("assignee_id", "team_id"):
        if (value := _int_query(request, name)) is not None:
            column = conversations.c[name]
            query = query.where(column.is_(None) if value == 0 else column == value)
    if (before := _int_query(request, "before")) is not None:
        query = query.where(conversations.c.id < before)
    async with request.app[DB].read() as conn:
        if (view_id := _int_query(request, "view_id")) is not None:
            group = await _view_filter(conn, principal, view_id)
            fields = await contact_ops.field_defs(conn, principal.space_id)
            query = query.where(compile_filter(group, principal.space_id, fields))
        rows = (await conn.execute(query)).all()
    items = [conversation_json(r) for r in rows]
    return web.json_response({"items": items, "next_before": items[-1]["id"] if items else None})


async def show_conversation(request: web.Request) -> web.Response:
    conversation_id = _path_id(request, "conversation_id")
    async with request.app[DB].read() as conn:
        row = (
            await conn.execute(
                sa.select(conversations, contacts.c.name.label("contact_name"))
                .join(contacts, contacts.c.id == conversations.c.contact_id)
                .where(conversations.c.id == conversation_id)
                .where(conversations.c.space_id == request[PRINCIPAL].space_id)
            )
        ).first()
    if row is None:
        raise NotFound(f"no conversation {conversation_id} in this space")
    return web.json_response(conversation_json(row))


def conversation_json(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "contact": {"id": r.contact_id, "name": r.contact_name},
        "channel_id": r.channel_id,
        "handler": r.handler,
        "status": "closed" if r.closed_at is not None else r.status,
        "assignee_id": r.assignee_id,
        "team_id": r.team_id,
        "created_at": _iso(r.created_at),
        "last_message_at": _iso(r.last_message_at),
        "closed_at": _iso(r.closed_at),
    }


async def list_messages(request: web.Request) -> web.Response:
    """Oldest first; keyset pagination with `?after=<id>`; `?include=notes` adds the
    agents' internal notes."""
    known_query(request, "after", "limit", "include")
    include = request.query.get("include")
    if include not in (None, "notes"):
        raise InvalidPayload("include takes only 'notes'")
    space_id = request[PRINCIPAL].space_id
    conversation_id = _path_id(request, "conversation_id")
    async with request.app[DB].read() as conn:
        found = (
            await conn.execute(
                sa.select(conversations.c.id)
                .where(conversations.c.id == conversation_id)
                .where(conversations.c.space_id == space_id)
            )
        ).scalar()
        if found is None:
            raise NotFound(f"no conversation {conversation_id} in this space")
        query = (
            sa.select(messages)
            .where(messages.c.conversation_id == conversation_id)
            .where(messages.c.space_id == space_id)
            .order_by(messages.c.id)
            .limit(_limit(request))
        )
        if (after := _int_query(request, "after")) is not None:
            query = query.where(messages.c.id > after)
        if include is None:
            query = query.where(messages.c.direction != "note")
        rows = (await conn.execute(query)).all()
    key = request.app[SETTINGS].signing_key()
    items = [message_json(r, key) for r in rows]
    return web.json_response({"items": items, "next_after": items[-1]["id"] if items else None})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/conversations", list_conversations)
    app.router.add_get("/api/v1/conversations/{conversation_id}", show_conversation)
    app.router.add_get("/api/v1/conversations/{conversation_id}/messages", list_messages)
