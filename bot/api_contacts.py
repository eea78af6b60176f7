"""`/api/v1` for contacts: search and filter, custom fields, tags, saved views."""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from bot import contacts as contact_ops
from bot import merge as merge_ops
from bot import privacy
from bot import shortcuts as shortcut_ops
from bot.api import _int_query, _iso, _limit, _path_id
from bot.auth import PRINCIPAL
from bot.csv_io import export_csv
from bot.errors import InvalidPayload, NotFound
from bot.filters import Group, compile_filter
from bot.keys import DB
from bot.roles import require
from bot.storage.tables import contact_tags, contacts, field_definitions, shortcuts, tags, views
from bot.untrusted import loads

M = TypeVar("M", bound=BaseModel)


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


class Merge(BaseModel):
    other_id: int = Field(ge=1, le=2**63 - 1, description="merged into the contact in the path")


class NewShortcut(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    text: str = Field(max_length=4000)
    quick_replies: list[str] = Field(default_factory=list, max_length=13)
    attachment_url: str | None = Field(None, pattern=r"^https?://")
    shared: bool = True


class ShortcutChange(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=100)
    text: str | None = Field(None, max_length=4000)
    quick_replies: list[str] | None = Field(None, max_length=13)
    attachment_url: str | None = Field(None, pattern=r"^https?://")


class NewView(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    filter: Group
    shared: bool = True


class ViewChange(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    filter: Group | None = None


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


def _contact_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "phone": row.phone,
        "email": row.email,
        "language": row.language,
        "status": row.status,
        "assignee_id": row.assignee_id,
        "created_at": _iso(row.created_at),
        "last_message_at": _iso(row.last_message_at),
    }


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
    items = [_contact_json(r) for r in rows]
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


async def list_views(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    async with request.app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(views)
            .where(views.c.space_id == principal.space_id)
            .where(_visible(views, principal))
        )
        items = [
            {"id": r.id, "name": r.name, "filter": r.filter, "shared": r.user_id is None}
            for r in rows
        ]
    return web.json_response({"items": items})


async def create_view(request: web.Request) -> web.Response:
    new = await _body(request, NewView)
    principal = request[PRINCIPAL]
    if new.shared:
        require(request, "manager")
    async with request.app[DB].write() as conn:
        # compile once now, so a view that cannot run is refused when saved
        compile_filter(
            new.filter, principal.space_id, await contact_ops.field_defs(conn, principal.space_id)
        )
        view_id = (
            await conn.execute(
                views.insert()
                .values(
                    space_id=principal.space_id,
                    user_id=None if new.shared else principal.user_id,
                    name=new.name,
                    filter=new.filter.model_dump(mode="json", exclude_none=True),
                )
                .returning(views.c.id)
            )
        ).scalar_one()
    return web.json_response({"id": view_id, "name": new.name}, status=201)


async def view_contacts(request: web.Request) -> web.Response:
    async with request.app[DB].read() as conn:
        group = await _view_filter(conn, request[PRINCIPAL], _path_id(request, "view_id"))
    return await _page(request, group)


async def create_shortcut(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    new = await _body(request, NewShortcut)
    if new.shared:
        require(request, "manager")
    async with request.app[DB].write() as conn:
        keys = set(await contact_ops.field_defs(conn, principal.space_id))
        shortcut_ops.check(new.text, keys)
        shortcut_id = (
            await conn.execute(
                shortcuts.insert()
                .values(
                    space_id=principal.space_id,
                    user_id=None if new.shared else principal.user_id,
                    name=new.name,
                    text=new.text,
                    quick_replies=new.quick_replies,
                    attachment_url=new.attachment_url,
                )
                .returning(shortcuts.c.id)
            )
        ).scalar_one()
    return web.json_response({"id": shortcut_id, "name": new.name}, status=201)


async def list_shortcuts(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    async with request.app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(shortcuts)
            .where(shortcuts.c.space_id == principal.space_id)
            .where(_visible(shortcuts, principal))
        )
        items = [
            {
                "id": r.id,
                "name": r.name,
                "text": r.text,
                "quick_replies": r.quick_replies,
                "shared": r.user_id is None,
            }
            for r in rows
        ]
    return web.json_response({"items": items})


async def render_shortcut(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    contact_id = _int_query(request, "contact_id")
    if contact_id is None:
        raise InvalidPayload("say which contact: ?contact_id=<id>")
    async with request.app[DB].read() as conn:
        parts = await shortcut_ops.render(
            conn,
            principal.space_id,
            _path_id(request, "shortcut_id"),
            contact_id,
            principal.user_id,
        )
    return web.json_response({"parts": [p.model_dump(mode="json") for p in parts]})


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


async def _owned(conn: Any, request: web.Request, table: sa.Table, what: str) -> int:
    """A view or shortcut the caller may change: their own, or a shared one if a manager."""
    principal = request[PRINCIPAL]
    item_id = _path_id(request, f"{what}_id")
    row = (
        await conn.execute(
            sa.select(table.c.user_id)
            .where(table.c.id == item_id, table.c.space_id == principal.space_id)
            .where(_visible(table, principal))
        )
    ).first()
    if row is None:
        raise NotFound(f"no {what} {item_id} in this space")
    if row.user_id is None:
        require(request, "manager")
    return item_id


async def change_view(request: web.Request) -> web.Response:
    change = await _body(request, ViewChange)
    space_id = request[PRINCIPAL].space_id
    async with request.app[DB].write() as conn:
        view_id = await _owned(conn, request, views, "view")
        values: dict[str, Any] = {}
        if change.name is not None:
            values["name"] = change.name
        if change.filter is not None:
            compile_filter(change.filter, space_id, await contact_ops.field_defs(conn, space_id))
            values["filter"] = change.filter.model_dump(mode="json", exclude_none=True)
        if values:
            await conn.execute(views.update().where(views.c.id == view_id).values(**values))
    return web.json_response({"id": view_id, **values})


async def change_shortcut(request: web.Request) -> web.Response:
    change = await _body(request, ShortcutChange)
    space_id = request[PRINCIPAL].space_id
    async with request.app[DB].write() as conn:
        shortcut_id = await _owned(conn, request, shortcuts, "shortcut")
        if change.text is not None:
            shortcut_ops.check(change.text, set(await contact_ops.field_defs(conn, space_id)))
        values = change.model_dump(exclude_none=True)
        if "attachment_url" in change.model_fields_set:
            values["attachment_url"] = change.attachment_url  # null removes it
        if values:
            await conn.execute(
                shortcuts.update().where(shortcuts.c.id == shortcut_id).values(**values)
            )
    return web.json_response({"id": shortcut_id, **values})


async def delete_owned(request: web.Request) -> web.Response:
    table = views if "view_id" in request.match_info else shortcuts
    async with request.app[DB].write() as conn:
        item_id = await _owned(conn, request, table, "view" if table is views else "shortcut")
        await conn.execute(table.delete().where(table.c.id == item_id))
    return web.Response(status=204)


def _visible(table: sa.Table, principal: Any) -> Any:
    """Shared with the space (no owner), or the caller's own."""
    return sa.or_(table.c.user_id.is_(None), table.c.user_id == principal.user_id)


async def _view_filter(conn: Any, principal: Any, view_id: int) -> Group:
    row = (
        await conn.execute(
            sa.select(views.c.filter)
            .where(views.c.id == view_id)
            .where(views.c.space_id == principal.space_id)
            .where(_visible(views, principal))
        )
    ).first()
    if row is None:
        raise NotFound(f"no view {view_id} in this space")
    return Group.model_validate(row.filter)


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


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/contacts", list_contacts)
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
    app.router.add_get("/api/v1/views", list_views)
    app.router.add_post("/api/v1/views", create_view)
    app.router.add_patch("/api/v1/views/{view_id}", change_view)
    app.router.add_delete("/api/v1/views/{view_id}", delete_owned)
    app.router.add_get("/api/v1/views/{view_id}/contacts", view_contacts)
    app.router.add_get("/api/v1/shortcuts", list_shortcuts)
    app.router.add_post("/api/v1/shortcuts", create_shortcut)
    app.router.add_patch("/api/v1/shortcuts/{shortcut_id}", change_shortcut)
    app.router.add_delete("/api/v1/shortcuts/{shortcut_id}", delete_owned)
    app.router.add_get("/api/v1/shortcuts/{shortcut_id}/render", render_shortcut)
    app.router.add_get("/api/v1/contacts/{contact_id}/export", export_contact)
    app.router.add_post("/api/v1/contacts/{contact_id}/erase", erase_contact)
    app.router.add_post("/api/v1/contacts/{contact_id}/merge", merge_contacts)
    app.router.add_post("/api/v1/merges/{merge_id}/undo", undo_merge)
