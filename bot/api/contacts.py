"""`/api/v1` for contacts: search and filter, custom fields, tags, exports, merges."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from bot.api.auth import PRINCIPAL
from bot.api.params import _body as _body  # still imported from here by older modules
from bot.api.params import _int_query, _iso, _limit, _path_id
from bot.api.roles import require
from bot.api.views import _view_filter as _view_filter
from bot.errors import InvalidPayload, NotFound
from bot.keys import DB
from bot.pipeline.untrusted import loads
from bot.storage.tables import contact_tags, contacts, field_definitions, identities, tags
from bot.workspace import contacts as contact_ops
from bot.workspace import merge as merge_ops
from bot.workspace import privacy
from bot.workspace.contacts import get_contact as contact_row
from bot.workspace.csv_io import export_csv
from bot.workspace.filters import Group, compile_filter


class NewField(BaseModel):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    label: str = ""
    type: Literal["text", "number", "date", "boolean", "choice", "email", "phone", "url"]
    options: list[str] = Field(default_factory=list)


class FieldChange(BaseModel):
    """A field's key and type stay: stored values were validated against them."""

    label: str | None = Field(None, max_length=200)
    options: list[str] | None = None


class FieldValue(BaseModel):
    value: Any = None


class Tags(BaseModel):
    tags: list[str] = Field(min_length=1, max_length=50)


class BulkTags(BaseModel):
    """Tag or untag many contacts: by ids, or every contact a saved view selects."""

    tags: list[str] = Field(min_length=1, max_length=50)
    action: Literal["add", "remove"] = "add"
    contact_ids: list[int] | None = Field(None, max_length=10_000)
    view_id: int | None = Field(None, ge=1, le=2**63 - 1)


class ContactChange(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    email: str | None = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(None, max_length=32, pattern=r"^\+?[0-9][0-9 ()./-]{2,31}$")
    language: str | None = Field(None, max_length=16, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]+)*$")


class Merge(BaseModel):
    other_id: int = Field(ge=1, le=2**63 - 1, description="merged into the contact in the path")


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
        "created_at": _iso(row.created_at),
        "last_message_at": _iso(row.last_message_at),
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
            _limit(request),
            _int_query(request, "before"),
            request.query.get("count") in ("1", "true"),
        )
        items = await _contacts_json(conn, rows)
    body: dict[str, Any] = {"items": items, "next_before": items[-1]["id"] if items else None}
    if total is not None:
        body["count"] = total
    return web.json_response(body)


async def list_contacts(request: web.Request) -> web.Response:
    """`?q=` searches name/phone/email; `?filter=<JSON group>` filters; `?count=1` counts."""
    group = None
    if raw := request.query.get("filter"):
        try:
            group = Group.model_validate(loads(raw, "filter"))
        except ValidationError as exc:
            raise InvalidPayload(f"filter: {exc}") from None
    return await _page(request, group)


async def list_fields(request: web.Request) -> web.Response:
    async with request.app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(field_definitions).where(
                field_definitions.c.space_id == request[PRINCIPAL].space_id
            )
        )
        items = [_field_json(r) for r in rows]
    return web.json_response({"items": items})


async def create_field(request: web.Request) -> web.Response:
    require(request, "manager")
    new = await _body(request, NewField)
    async with request.app[DB].write() as conn:
        field_id = await contact_ops.create_field(
            conn, request[PRINCIPAL].space_id, new.key, new.label, new.type, new.options
        )
        row = await _field(conn, request[PRINCIPAL].space_id, field_id)
    return web.json_response(_field_json(row), status=201)


async def _field(conn: Any, space_id: int, field_id: int) -> Any:
    row = (
        await conn.execute(
            sa.select(field_definitions).where(
                field_definitions.c.id == field_id, field_definitions.c.space_id == space_id
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"no field {field_id} in this space")
    return row


async def change_field(request: web.Request) -> web.Response:
    require(request, "manager")
    change = await _body(request, FieldChange)
    space_id, field_id = request[PRINCIPAL].space_id, _path_id(request, "field_id")
    async with request.app[DB].write() as conn:
        row = await _field(conn, space_id, field_id)
        if change.options is not None and row.type != "choice":
            raise InvalidPayload(f"only choice fields have options; {row.key} is {row.type}")
        if change.options is not None:
            await contact_ops.check_options_cover_values(conn, field_id, change.options)
        values = change.model_dump(exclude_none=True)
        if values:
            await conn.execute(
                field_definitions.update()
                .where(field_definitions.c.id == field_id)
                .values(**values)
            )
        row = await _field(conn, space_id, field_id)
    return web.json_response(_field_json(row))


async def delete_field(request: web.Request) -> web.Response:
    """Removes the definition and every contact's value for it."""
    require(request, "manager")
    space_id, field_id = request[PRINCIPAL].space_id, _path_id(request, "field_id")
    async with request.app[DB].write() as conn:
        await _field(conn, space_id, field_id)
        await conn.execute(field_definitions.delete().where(field_definitions.c.id == field_id))
    return web.Response(status=204)


def _field_json(r: Any) -> dict[str, Any]:
    return {"id": r.id, "key": r.key, "label": r.label, "type": r.type, "options": r.options}


async def list_tags(request: web.Request) -> web.Response:
    """The space's tags with how many contacts carry each."""
    async with request.app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(tags.c.name, sa.func.count(contact_tags.c.contact_id).label("contacts"))
            .outerjoin(contact_tags, contact_tags.c.tag_id == tags.c.id)
            .where(tags.c.space_id == request[PRINCIPAL].space_id)
            .group_by(tags.c.id, tags.c.name)
            .order_by(tags.c.name)
        )
        items = [{"name": r.name, "contacts": r.contacts} for r in rows]
    return web.json_response({"items": items})


async def set_field(request: web.Request) -> web.Response:
    body = await _body(request, FieldValue)
    async with request.app[DB].write() as conn:
        await contact_ops.set_field(
            conn,
            request[PRINCIPAL].space_id,
            _path_id(request, "contact_id"),
            request.match_info["key"],
            body.value,
        )
    return web.json_response({"key": request.match_info["key"], "value": body.value})


async def add_tags(request: web.Request) -> web.Response:
    body = await _body(request, Tags)
    async with request.app[DB].write() as conn:
        await contact_ops.tag(
            conn, request[PRINCIPAL].space_id, _path_id(request, "contact_id"), body.tags
        )
    return web.json_response({"tags": body.tags})


async def remove_tag(request: web.Request) -> web.Response:
    async with request.app[DB].write() as conn:
        await contact_ops.untag(
            conn,
            request[PRINCIPAL].space_id,
            _path_id(request, "contact_id"),
            request.match_info["name"],
        )
    return web.Response(status=204)


async def view_contacts(request: web.Request) -> web.Response:
    async with request.app[DB].read() as conn:
        group = await _view_filter(conn, request[PRINCIPAL], _path_id(request, "view_id"))
    return await _page(request, group)


async def export_contact(request: web.Request) -> web.Response:
    async with request.app[DB].read() as conn:
        data = await privacy.export(
            conn, request[PRINCIPAL].space_id, _path_id(request, "contact_id")
        )
    return web.json_response(data, dumps=lambda d: json.dumps(d, default=str))


async def erase_contact(request: web.Request) -> web.Response:
    require(request, "manager")
    principal = request[PRINCIPAL]
    async with request.app[DB].write() as conn:
        redacted = await privacy.erase(
            conn, principal.space_id, _path_id(request, "contact_id"), principal.user_id
        )
    return web.json_response({"erased": True, "messages_redacted": redacted})


async def bulk_tags(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    body = await _body(request, BulkTags)
    if (body.contact_ids is None) == (body.view_id is None):
        raise InvalidPayload("give contact_ids or view_id (one of them)")
    async with request.app[DB].write() as conn:
        ids = body.contact_ids or []
        if body.view_id is not None:
            group = await _view_filter(conn, principal, body.view_id)
            where = compile_filter(
                group,
                principal.space_id,
                await contact_ops.field_defs(conn, principal.space_id),
                for_page=False,
            )
            ids = list((await conn.execute(sa.select(contacts.c.id).where(where))).scalars())
        for contact_id in ids:
            if body.action == "add":
                await contact_ops.tag(conn, principal.space_id, contact_id, body.tags)
            else:
                for name in body.tags:
                    await contact_ops.untag(conn, principal.space_id, contact_id, name)
    return web.json_response({"contacts": len(ids), "action": body.action, "tags": body.tags})


async def export_contacts_csv(request: web.Request) -> web.StreamResponse:
    """The whole list (or a view's) as CSV, streamed page by page."""
    principal = request[PRINCIPAL]
    group = None
    if (view_id := _int_query(request, "view")) is not None:
        async with request.app[DB].read() as conn:
            group = await _view_filter(conn, principal, view_id)
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


async def merge_contacts(request: web.Request) -> web.Response:
    body = await _body(request, Merge)
    async with request.app[DB].write() as conn:
        merge_id = await merge_ops.merge(
            conn, request[PRINCIPAL].space_id, _path_id(request, "contact_id"), body.other_id
        )
    return web.json_response({"merge_id": merge_id}, status=201)


async def undo_merge(request: web.Request) -> web.Response:
    async with request.app[DB].write() as conn:
        await merge_ops.undo(conn, request[PRINCIPAL].space_id, _path_id(request, "merge_id"))
    return web.json_response({"undone": True})


async def show_contact(request: web.Request) -> web.Response:
    space_id = request[PRINCIPAL].space_id
    contact_id = _path_id(request, "contact_id")
    async with request.app[DB].read() as conn:
        return web.json_response(await _one(conn, space_id, contact_id))


async def change_contact(request: web.Request) -> web.Response:
    """Name, email, phone, language; null clears one."""
    change = await _body(request, ContactChange)
    space_id = request[PRINCIPAL].space_id
    contact_id = _path_id(request, "contact_id")
    async with request.app[DB].write() as conn:
        await contact_row(conn, space_id, contact_id)
        values = {name: getattr(change, name) for name in change.model_fields_set}
        if values:
            await conn.execute(contacts.update().where(contacts.c.id == contact_id).values(values))
        return web.json_response(await _one(conn, space_id, contact_id))


async def _one(conn: Any, space_id: int, contact_id: int) -> dict[str, Any]:
    row = await contact_row(conn, space_id, contact_id)
    ids = (
        await conn.execute(
            sa.select(identities.c.channel_id, identities.c.external_id).where(
                identities.c.contact_id == contact_id
            )
        )
    ).all()
    (shown,) = await _contacts_json(conn, [row])
    shown["identities"] = [{"channel_id": i.channel_id, "external_id": i.external_id} for i in ids]
    return shown


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/contacts", list_contacts)
    app.router.add_get("/api/v1/contacts/{contact_id}", show_contact)
    app.router.add_patch("/api/v1/contacts/{contact_id}", change_contact)
    app.router.add_get("/api/v1/contacts.csv", export_contacts_csv)
    app.router.add_post("/api/v1/tags/bulk", bulk_tags)
    app.router.add_get("/api/v1/fields", list_fields)
    app.router.add_post("/api/v1/fields", create_field)
    app.router.add_patch("/api/v1/fields/{field_id}", change_field)
    app.router.add_delete("/api/v1/fields/{field_id}", delete_field)
    app.router.add_get("/api/v1/tags", list_tags)
    app.router.add_put("/api/v1/contacts/{contact_id}/fields/{key}", set_field)
    app.router.add_post("/api/v1/contacts/{contact_id}/tags", add_tags)
    app.router.add_delete("/api/v1/contacts/{contact_id}/tags/{name}", remove_tag)
    app.router.add_get("/api/v1/views/{view_id}/contacts", view_contacts)
    app.router.add_get("/api/v1/contacts/{contact_id}/export", export_contact)
    app.router.add_post("/api/v1/contacts/{contact_id}/erase", erase_contact)
    app.router.add_post("/api/v1/contacts/{contact_id}/merge", merge_contacts)
    app.router.add_post("/api/v1/merges/{merge_id}/undo", undo_merge)
