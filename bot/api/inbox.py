"""`/api/v1/conversations`: the messaging inbox, filtered like the contacts (views too),
one conversation, and its messages with who sent each."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp import web

from bot.api.auth import PRINCIPAL
from bot.api.openapi import BEFORE, LIMIT, Routes, list_of, query_param
from bot.api.params import int_query, known_query, message_json, page_limit, path_id, space_row
from bot.api.views import view_filter
from bot.clock import iso
from bot.errors import InvalidPayload
from bot.keys import DB, SETTINGS
from bot.storage.tables import contacts, conversations, messages
from bot.workspace import contacts as contact_ops
from bot.workspace.filters import compile_filter

CHOICES = {"status": ("open", "closed"), "handler": ("bot", "flow", "waiting", "agent")}
QUERY = ("status", "handler", "channel_id", "contact_id", "assignee_id", "team_id", "view_id")
NULLABLE_STR = {"type": ["string", "null"]}
DATE_TIME = {"type": "string", "format": "date-time"}
CONVERSATION = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "contact": {
            "type": "object",
            "properties": {"id": {"type": "integer"}, "name": NULLABLE_STR},
        },
        "channel_id": {"type": "string"},
        "handler": {"enum": ["bot", "flow", "waiting", "agent"]},
        "status": {"enum": ["open", "closed"]},
        "assignee_id": {"type": ["integer", "null"]},
        "team_id": {"type": ["integer", "null"]},
        "created_at": DATE_TIME,
        "last_message_at": {"type": ["string", "null"], "format": "date-time"},
        "closed_at": {"type": ["string", "null"], "format": "date-time"},
    },
}
MESSAGE = {  # `message_json`
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "direction": {"enum": ["in", "out", "note"]},
        "sender": {
            "type": "object",
            "description": "who sent it; `id`: a user's, automation's or broadcast's id, "
            "`builtin` or the integration for a bot, the survey's id or `away` for a flow",
            "properties": {
                "type": {
                    "enum": ["contact", "user", "bot", "flow", "automation", "broadcast", "unknown"]
                },
                "id": {"type": ["integer", "string", "null"]},
            },
        },
        "parts": {"$ref": "#/components/schemas/Parts"},
        "status": {"type": "string"},
        "error": NULLABLE_STR,
        "reply_to_id": {"type": ["integer", "null"]},
        "created_at": DATE_TIME,
    },
}
routes = Routes()


@routes.get(
    "/api/v1/conversations",
    "List conversations, newest first",
    list_of(CONVERSATION, "next_before"),
    query=(
        LIMIT,
        BEFORE,
        query_param("status", type="string", enum=list(CHOICES["status"])),
        query_param(
            "handler",
            "waiting: handed over, nobody has it yet (the queue)",
            type="string",
            enum=list(CHOICES["handler"]),
        ),
        query_param("channel_id", type="string", maxLength=32),
        query_param("contact_id"),
        query_param("assignee_id", "0: unassigned", type="integer", minimum=0, maximum=2**63 - 1),
        query_param("team_id", "0: no team", type="integer", minimum=0, maximum=2**63 - 1),
        query_param("view_id", "the conversations of the view's contacts"),
    ),
)
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
        .limit(page_limit(request))
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
    if (contact_id := int_query(request, "contact_id")) is not None:
        query = query.where(conversations.c.contact_id == contact_id)
    for name in ("assignee_id", "team_id"):
        if (value := int_query(request, name)) is not None:
            column = conversations.c[name]
            query = query.where(column.is_(None) if value == 0 else column == value)
    if (before := int_query(request, "before")) is not None:
        query = query.where(conversations.c.id < before)
    async with request.app[DB].read() as conn:
        if (view_id := int_query(request, "view_id")) is not None:
            group = await view_filter(conn, principal, view_id)
            fields = await contact_ops.field_defs(conn, principal.space_id)
            query = query.where(compile_filter(group, principal.space_id, fields))
        rows = (await conn.execute(query)).all()
    items = [conversation_json(r) for r in rows]
    return web.json_response({"items": items, "next_before": items[-1]["id"] if items else None})


@routes.get("/api/v1/conversations/{conversation_id}", "One conversation", CONVERSATION)
async def show_conversation(request: web.Request) -> web.Response:
    async with request.app[DB].read() as conn:
        row = await space_row(
            conn,
            conversations,
            request[PRINCIPAL].space_id,
            path_id(request, "conversation_id"),
            "conversation",
            conversations,
            contacts.c.name.label("contact_name"),
            where=contacts.c.id == conversations.c.contact_id,
        )
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
        "created_at": iso(r.created_at),
        "last_message_at": iso(r.last_message_at),
        "closed_at": iso(r.closed_at),
    }


@routes.get(
    "/api/v1/conversations/{conversation_id}/messages",
    "A conversation's messages, oldest first",
    list_of(MESSAGE, "next_after"),
    query=(LIMIT, query_param("after"), query_param("include", enum=["notes"])),
)
async def list_messages(request: web.Request) -> web.Response:
    """Oldest first; keyset pagination with `?after=<id>`; `?include=notes` adds the
    agents' internal notes."""
    known_query(request, "after", "limit", "include")
    include = request.query.get("include")
    if include not in (None, "notes"):
        raise InvalidPayload("include takes only 'notes'")
    space_id = request[PRINCIPAL].space_id
    conversation_id = path_id(request, "conversation_id")
    async with request.app[DB].read() as conn:
        await space_row(
            conn, conversations, space_id, conversation_id, "conversation", conversations.c.id
        )
        query = (
            sa.select(messages)
            .where(messages.c.conversation_id == conversation_id)
            .where(messages.c.space_id == space_id)
            .order_by(messages.c.id)
            .limit(page_limit(request))
        )
        if (after := int_query(request, "after")) is not None:
            query = query.where(messages.c.id > after)
        if include is None:
            query = query.where(messages.c.direction != "note")
        rows = (await conn.execute(query)).all()
    key = request.app[SETTINGS].signing_key()
    items = [message_json(r, key) for r in rows]
    return web.json_response({"items": items, "next_after": items[-1]["id"] if items else None})
