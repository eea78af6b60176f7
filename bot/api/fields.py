"""`/api/v1` for what describes contacts: the space's custom fields and a contact's values,
and tags (one contact's, many at once, the space's list)."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, Field

from bot.api.auth import PRINCIPAL
from bot.api.openapi import Routes
from bot.api.params import json_body, path_id, space_items, space_row
from bot.api.roles import require
from bot.api.views import view_filter
from bot.errors import InvalidPayload
from bot.keys import DB
from bot.storage.tables import contact_tags, contacts, field_definitions, tags
from bot.workspace import contacts as contact_ops
from bot.workspace.filters import compile_filter
from bot.workspace.triggers import changed


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


routes = Routes()


@routes.get("/api/v1/fields", "The space's custom fields")
async def list_fields(request: web.Request) -> web.Response:
    return await space_items(request, field_definitions, _field_json)


@routes.post("/api/v1/fields", "Define a custom field", body=NewField, status=201)
async def create_field(request: web.Request) -> web.Response:
    require(request, "manager")
    new = await json_body(request, NewField)
    space_id = request[PRINCIPAL].space_id
    async with request.app[DB].write() as conn:
        field_id = await contact_ops.create_field(
            conn, space_id, new.key, new.label, new.type, new.options
        )
        row = await space_row(conn, field_definitions, space_id, field_id, "field")
    return web.json_response(_field_json(row), status=201)


@routes.patch(
    "/api/v1/fields/{field_id}",
    "Relabel a field or change a choice field's options",
    body=FieldChange,
)
async def change_field(request: web.Request) -> web.Response:
    require(request, "manager")
    change = await json_body(request, FieldChange)
    space_id, field_id = request[PRINCIPAL].space_id, path_id(request, "field_id")
    async with request.app[DB].write() as conn:
        row = await space_row(conn, field_definitions, space_id, field_id, "field")
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
        row = await space_row(conn, field_definitions, space_id, field_id, "field")
    return web.json_response(_field_json(row))


@routes.delete("/api/v1/fields/{field_id}", "Delete a field and its values")
async def delete_field(request: web.Request) -> web.Response:
    """Removes the definition and every contact's value for it."""
    require(request, "manager")
    space_id, field_id = request[PRINCIPAL].space_id, path_id(request, "field_id")
    async with request.app[DB].write() as conn:
        await space_row(conn, field_definitions, space_id, field_id, "field")
        await conn.execute(field_definitions.delete().where(field_definitions.c.id == field_id))
        await changed(conn, space_id)  # automations may name it
    return web.Response(status=204)


def _field_json(r: Any) -> dict[str, Any]:
    return {"id": r.id, "key": r.key, "label": r.label, "type": r.type, "options": r.options}


@routes.put(
    "/api/v1/contacts/{contact_id}/fields/{key}",
    "Set (or clear with null) a contact's custom field",
    body=FieldValue,
)
async def set_field(request: web.Request) -> web.Response:
    body = await json_body(request, FieldValue)
    async with request.app[DB].write() as conn:
        await contact_ops.set_field(
            conn,
            request[PRINCIPAL].space_id,
            path_id(request, "contact_id"),
            request.match_info["key"],
            body.value,
        )
    return web.json_response({"key": request.match_info["key"], "value": body.value})


@routes.get("/api/v1/tags", "The space's tags and how many contacts carry each")
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


@routes.post("/api/v1/contacts/{contact_id}/tags", "Tag a contact", body=Tags)
async def add_tags(request: web.Request) -> web.Response:
    body = await json_body(request, Tags)
    async with request.app[DB].write() as conn:
        await contact_ops.tag(
            conn, request[PRINCIPAL].space_id, path_id(request, "contact_id"), body.tags
        )
    return web.json_response({"tags": body.tags})


@routes.delete("/api/v1/contacts/{contact_id}/tags/{name}", "Untag a contact")
async def remove_tag(request: web.Request) -> web.Response:
    async with request.app[DB].write() as conn:
        await contact_ops.untag(
            conn,
            request[PRINCIPAL].space_id,
            path_id(request, "contact_id"),
            request.match_info["name"],
        )
    return web.Response(status=204)


@routes.post("/api/v1/tags/bulk", "Tag or untag many contacts (ids or a view)", body=BulkTags)
async def bulk_tags(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    body = await json_body(request, BulkTags)
    if (body.contact_ids is None) == (body.view_id is None):
        raise InvalidPayload("give contact_ids or view_id (one of them)")
    async with request.app[DB].write() as conn:
        ids = body.contact_ids or []
        if body.view_id is not None:
            group = await view_filter(conn, principal, body.view_id)
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
