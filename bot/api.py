"""The REST API's first slice (`/api/v1`): enough to inspect what happened.

Every query is scoped by the token's space: another space's ids answer 404.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, ValidationError

from bot.auth import PRINCIPAL
from bot.contacts import get_contact as contact_row
from bot.errors import InvalidPayload, NotFound
from bot.keys import DB, SETTINGS
from bot.media import with_media_urls
from bot.openapi import docs_html, spec
from bot.storage.tables import contacts, conversations, identities, messages
from bot.untrusted import loads

M = TypeVar("M", bound=BaseModel)
MAX_LIMIT = 200
MAX_ID = 2**63 - 1  # the databases' BIGINT


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def _int_query(request: web.Request, name: str, default: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_ID:
        raise InvalidPayload(f"query parameter {name!r} must be an integer from 0 to {MAX_ID}")
    return value


def _limit(request: web.Request) -> int:
    limit = _int_query(request, "limit", 50)
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise InvalidPayload(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


async def list_conversations(request: web.Request) -> web.Response:
    """Newest first, keyset pagination with `?before=<id>`; filters: `status`, `handler`,
    `channel_id`, `contact_id`, `assignee_id` (`0`: unassigned)."""
    space_id = request[PRINCIPAL].space_id
    query = (
        sa.select(conversations, contacts.c.name.label("contact_name"))
        .join(contacts, contacts.c.id == conversations.c.contact_id)
        .where(conversations.c.space_id == space_id)
        .order_by(conversations.c.id.desc())
        .limit(_limit(request))
    )
    for name, allowed in (("status", ("open", "closed")), ("handler", ("bot", "flow", "agent"))):
        if value := request.query.get(name):
            if value not in allowed:
                raise InvalidPayload(f"{name} must be one of {', '.join(allowed)}")
            query = query.where(conversations.c[name] == value)
    if channel_id := request.query.get("channel_id"):
        query = query.where(conversations.c.channel_id == channel_id)
    if (contact_id := _int_query(request, "contact_id")) is not None:
        query = query.where(conversations.c.contact_id == contact_id)
    if (assignee_id := _int_query(request, "assignee_id")) is not None:
        column = conversations.c.assignee_id
        query = query.where(column.is_(None) if assignee_id == 0 else column == assignee_id)
    if (before := _int_query(request, "before")) is not None:
        query = query.where(conversations.c.id < before)
    async with request.app[DB].read() as conn:
        rows = (await conn.execute(query)).all()
    items = [
        {
            "id": r.id,
            "contact": {"id": r.contact_id, "name": r.contact_name},
            "channel_id": r.channel_id,
            "handler": r.handler,
            "status": r.status,
            "created_at": _iso(r.created_at),
            "last_message_at": _iso(r.last_message_at),
        }
        for r in rows
    ]
    return web.json_response({"items": items, "next_before": items[-1]["id"] if items else None})


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


def message_json(r: Any, key: bytes | None = None) -> dict[str, Any]:
    """A stored message; with `key`, platform media get a signed `/media/` URL."""
    return {
        "id": r.id,
        "direction": r.direction,
        "sender": sender_json(r.sender_type, r.sender_id),
        "parts": with_media_urls(key, r.channel_id, r.parts) if key else r.parts,
        "status": r.status,
        "error": r.error,
        "reply_to_id": r.reply_to_id,
        "created_at": _iso(r.created_at),
    }


async def show_contact(request: web.Request) -> web.Response:
    space_id = request[PRINCIPAL].space_id
    contact_id = _path_id(request, "contact_id")
    async with request.app[DB].read() as conn:
        row = await contact_row(conn, space_id, contact_id)
        ids = (
            await conn.execute(
                sa.select(identities.c.channel_id, identities.c.external_id).where(
                    identities.c.contact_id == contact_id
                )
            )
        ).all()
    return web.json_response(
        {
            "id": row.id,
            "name": row.name,
            "language": row.language,
            "phone": row.phone,
            "email": row.email,
            "created_at": _iso(row.created_at),
            "last_message_at": _iso(row.last_message_at),
            "identities": [{"channel_id": i.channel_id, "external_id": i.external_id} for i in ids],
        }
    )


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(spec(str(request.url.origin())))


async def docs(request: web.Request) -> web.Response:
    return web.Response(text=docs_html(spec(str(request.url.origin()))), content_type="text/html")


def sender_json(kind: str, sender_id: str | None) -> dict[str, Any]:
    """`{"type", "id"}`: ids of people, automations and broadcasts are numbers."""
    numeric = kind in ("user", "automation", "broadcast") and sender_id and sender_id.isdigit()
    return {"type": kind, "id": int(sender_id) if numeric else sender_id}


def known_query(request: web.Request, *names: str) -> None:
    """A misspelt query parameter would otherwise be ignored and answer everything."""
    unknown = sorted(set(request.query) - set(names))
    if unknown:
        raise InvalidPayload(
            f"unknown query parameter {unknown[0]!r}; this route takes {', '.join(names)}"
        )


async def _body(request: web.Request, model: type[M]) -> M:
    """The request's JSON body as `model`; every way it can be wrong is a 400 naming where."""
    data = loads(await request.read())
    if isinstance(data, dict) and model.model_config.get("extra") != "allow":
        known = {f.alias or name for name, f in model.model_fields.items()}
        unknown = sorted(set(data) - known)
        if unknown:  # a misspelt field would otherwise be ignored without a word
            raise InvalidPayload(f"{unknown[0]}: unknown field; known: {', '.join(sorted(known))}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise InvalidPayload(f"{where}: {err['msg']}") from None


def _path_id(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
        raise NotFound(f"no {name.removesuffix('_id')} {raw!r}: ids are positive integers")
    return int(raw)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", openapi)
    app.router.add_get("/api/v1/docs", docs)
    app.router.add_get("/api/v1/conversations", list_conversations)
    app.router.add_get("/api/v1/conversations/{conversation_id}/messages", list_messages)
    app.router.add_get("/api/v1/contacts/{contact_id}", show_contact)
