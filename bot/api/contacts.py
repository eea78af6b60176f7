"""`/api/v1` for contacts: search and filter, one contact, exports, erasure, merges."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from bot.api.auth import PRINCIPAL
from bot.api.openapi import BEFORE, CSV, LIMIT, Routes, list_of, query_param
from bot.api.params import int_query, json_body, page_limit, path_id
from bot.api.roles import require
from bot.api.views import view_filter
from bot.clock import iso, now
from bot.errors import InvalidPayload
from bot.keys import DB
from bot.pipeline.untrusted import loads
from bot.storage.tables import contacts
from bot.workspace import contacts as contact_ops
from bot.workspace import merge as merge_ops
from bot.workspace import privacy
from bot.workspace.contacts import get_contact as contact_row
from bot.workspace.csv_io import export_csv
from bot.workspace.filters import Group

log = logging.getLogger(__name__)


class ContactChange(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    email: str | None = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(None, max_length=32, pattern=r"^\+?[0-9][0-9 ()./-]{2,31}$")
    language: str | None = Field(None, max_length=16, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]+)*$")
    subscribed: bool | None = Field(
        None,
        description="false: no broadcast reaches the contact (as if they sent STOP); "
        "true (managers only): they get broadcasts again",
    )


class Merge(BaseModel):
    other_id: int = Field(ge=1, le=2**63 - 1, description="merged into the contact in the path")


NULLABLE_STR = {"type": ["string", "null"]}
CONTACT = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": NULLABLE_STR,
        "language": NULLABLE_STR,
        "phone": NULLABLE_STR,
        "email": NULLABLE_STR,
        "status": {"enum": ["open", "closed"]},
        "assignee_id": {"type": ["integer", "null"]},
        "team_id": {"type": ["integer", "null"]},
        "fields": {"type": "object", "description": "custom field values by key"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "created_at": {"type": "string", "format": "date-time"},
        "last_message_at": {"type": ["string", "null"], "format": "date-time"},
        "unsubscribed_at": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "when the contact opted out of broadcasts; null: subscribed",
        },
        "identities": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "channel_id": {"type": "string"},
                    "external_id": {"type": "string"},
                },
            },
        },
    },
}
COUNT = query_param("count", type="string", enum=["0", "1", "true", "false"])
routes = Routes()


def _contact_json(
    row: Any, fields: dict[str, Any], tags_: list[str], **more: Any
) -> dict[str, Any]:
    """The one contact representation: every list and `GET /contacts/{id}` answer it."""
    return {
        "id": row.id,
        "name": row.name,
        "phone": row.phone,
        "email": row.email,
        "language": row.language,
        "status": row.status,
        "assignee_id": row.assignee_id,
        "team_id": row.team_id,
        "fields": {key: _field_value(value) for key, value in fields.items()},
        "tags": tags_,
        "created_at": iso(row.created_at),
        "last_message_at": iso(row.last_message_at),
        "unsubscribed_at": iso(row.unsubscribed_at),
        **more,
    }


def _field_value(value: Any) -> Any:
    return value.date().isoformat() if isinstance(value, datetime) else value


async def _contacts_json(conn: Any, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """A page of contacts with their fields and tags: two queries for the page, not two
    per contact."""
    ids = [r.id for r in rows]
    fields: dict[int, dict[str, Any]] = {i: {} for i in ids}
    tags_: dict[int, list[str]] = {i: [] for i in ids}
    if ids:
        for contact_id, key, value in await contact_ops.fields_of_many(conn, ids):
            fields[contact_id][key] = value
        for contact_id, name in await contact_ops.tags_of_many(conn, ids):
            tags_[contact_id].append(name)
    return [_contact_json(r, fields[r.id], tags_[r.id]) for r in rows]


async def _page(request: web.Request, group: Group | None) -> web.Response:
    space_id = request[PRINCIPAL].space_id
    async with request.app[DB].read() as conn:
        rows, total = await contact_ops.find(
            conn,
            space_id,
            group,
            request.query.get("q"),
            page_limit(request),
            int_query(request, "before"),
            request.query.get("count") in ("1", "true"),
        )
        items = await _contacts_json(conn, rows)
    body: dict[str, Any] = {"items": items, "next_before": items[-1]["id"] if items else None}
    if total is not None:
        body["count"] = total
    return web.json_response(body)


@routes.get(
    "/api/v1/contacts",
    "Contacts, newest first: `q` searches, `filter` is a JSON filter group",
    list_of(CONTACT, "next_before"),
    query=(
        LIMIT,
        BEFORE,
        query_param("q", type="string"),
        {
            "name": "filter",
            "in": "query",
            "required": False,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Group"}}},
        },
        COUNT,
    ),
    refers=(Group,),
)
async def list_contacts(request: web.Request) -> web.Response:
    """`?q=` searches name/phone/email; `?filter=<JSON group>` filters; `?count=1` counts."""
    group = None
    if raw := request.query.get("filter"):
        try:
            group = Group.model_validate(loads(raw, "filter"))
        except ValidationError as exc:
            raise InvalidPayload(f"filter: {exc}") from None
    return await _page(request, group)


@routes.get(
    "/api/v1/views/{view_id}/contacts",
    "The contacts a view selects",
    list_of(CONTACT, "next_before"),
    query=(LIMIT, BEFORE, COUNT),
)
async def view_contacts(request: web.Request) -> web.Response:
    async with request.app[DB].read() as conn:
        group = await view_filter(conn, request[PRINCIPAL], path_id(request, "view_id"))
    return await _page(request, group)


@routes.get(
    "/api/v1/contacts/{contact_id}/export",
    "Everything held about one contact (privacy export)",
)
async def export_contact(request: web.Request) -> web.Response:
    async with request.app[DB].read() as conn:
        data = await privacy.export(
            conn, request[PRINCIPAL].space_id, path_id(request, "contact_id")
        )
    return web.json_response(data, dumps=lambda d: json.dumps(d, default=str))


@routes.post(
    "/api/v1/contacts/{contact_id}/erase",
    "Erase a contact: messages redacted, fields and identities removed",
    said="erased",
    errors=(401, 403, 404),
)
async def erase_contact(request: web.Request) -> web.Response:
    require(request, "manager")
    principal = request[PRINCIPAL]
    async with request.app[DB].write() as conn:
        redacted = await privacy.erase(
            conn, principal.space_id, path_id(request, "contact_id"), principal.user_id
        )
    return web.json_response({"erased": True, "messages_redacted": redacted})


@routes.get(
    "/api/v1/contacts.csv",
    "Contacts as CSV, streamed (`view` limits them to a saved view)",
    query=(query_param("view"),),
    errors=(400, 401, 404),
    **CSV,
)
async def export_contacts_csv(request: web.Request) -> web.StreamResponse:
    """The whole list (or a view's) as CSV, streamed page by page."""
    principal = request[PRINCIPAL]
    group = None
    if (view_id := int_query(request, "view")) is not None:
        async with request.app[DB].read() as conn:
            group = await view_filter(conn, principal, view_id)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": 'attachment; filename="contacts.csv"',
        }
    )
    await response.prepare(request)
    async for line in export_csv(request.app[DB], principal.space_id, group):
        await response.write(line.encode())
    await response.write_eof()
    return response


@routes.post(
    "/api/v1/contacts/{contact_id}/merge",
    "Merge another contact into this one (undoable)",
    body=Merge,
    status=201,
)
async def merge_contacts(request: web.Request) -> web.Response:
    body = await json_body(request, Merge)
    async with request.app[DB].write() as conn:
        merge_id = await merge_ops.merge(
            conn, request[PRINCIPAL].space_id, path_id(request, "contact_id"), body.other_id
        )
    return web.json_response({"merge_id": merge_id}, status=201)


@routes.post(
    "/api/v1/merges/{merge_id}/undo", "Undo a merge", said="undone", errors=(400, 401, 404)
)
async def undo_merge(request: web.Request) -> web.Response:
    async with request.app[DB].write() as conn:
        await merge_ops.undo(conn, request[PRINCIPAL].space_id, path_id(request, "merge_id"))
    return web.json_response({"undone": True})


@routes.get(
    "/api/v1/contacts/{contact_id}",
    "One contact: fields, tags, assignee, team and identities",
    CONTACT,
)
async def show_contact(request: web.Request) -> web.Response:
    space_id = request[PRINCIPAL].space_id
    contact_id = path_id(request, "contact_id")
    async with request.app[DB].read() as conn:
        return web.json_response(await _one(conn, space_id, contact_id))


@routes.patch(
    "/api/v1/contacts/{contact_id}",
    "Change name, email, phone or language (null clears one), or whether broadcasts reach "
    "the contact (`subscribed`)",
    body=ContactChange,
)
async def change_contact(request: web.Request) -> web.Response:
    """Name, email, phone, language; null clears one. `subscribed`: any agent may opt a
    contact out (they asked by other means); opting back in is consent, so a manager's."""
    change = await json_body(request, ContactChange)
    space_id = request[PRINCIPAL].space_id
    contact_id = path_id(request, "contact_id")
    sent = change.model_fields_set
    if "subscribed" in sent and change.subscribed is None:
        raise InvalidPayload("subscribed: send true or false")
    if change.subscribed:
        require(request, "manager")
    async with request.app[DB].write() as conn:
        row = await contact_row(conn, space_id, contact_id)
        values = {name: getattr(change, name) for name in sent - {"subscribed"}}
        if change.subscribed is not None and change.subscribed == (row.unsubscribed_at is not None):
            # an opt-out keeps its first date: unsubscribing twice changes nothing
            values["unsubscribed_at"] = None if change.subscribed else now()
            log.info(
                "contact subscribed to broadcasts again"
                if change.subscribed
                else "contact unsubscribed",
                extra={"contact": contact_id, "space": space_id, "by": request[PRINCIPAL].user_id},
            )
        if values:
            await conn.execute(contacts.update().where(contacts.c.id == contact_id).values(values))
        return web.json_response(await _one(conn, space_id, contact_id))


async def _one(conn: Any, space_id: int, contact_id: int) -> dict[str, Any]:
    row = await contact_row(conn, space_id, contact_id)
    (shown,) = await _contacts_json(conn, [row])
    shown["identities"] = await contact_ops.identities_of(conn, contact_id)
    return shown
