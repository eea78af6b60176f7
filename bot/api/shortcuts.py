"""`/api/v1/shortcuts`: reusable messages with variables, rendered for one contact."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from bot.api.auth import PRINCIPAL
from bot.api.openapi import Routes, query_param
from bot.api.params import int_query, json_body, path_id, space_items
from bot.api.roles import require
from bot.api.views import delete_owned, owned, visible
from bot.errors import InvalidPayload
from bot.keys import DB
from bot.storage.tables import shortcuts
from bot.workspace import contacts as contact_ops
from bot.workspace import shortcuts as shortcut_ops


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


routes = Routes()


@routes.post(
    "/api/v1/shortcuts",
    "Save a shortcut (its variables are checked)",
    body=NewShortcut,
    status=201,
)
async def create_shortcut(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    new = await json_body(request, NewShortcut)
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


@routes.get("/api/v1/shortcuts", "Shortcuts: shared, and the caller's own")
async def list_shortcuts(request: web.Request) -> web.Response:
    return await space_items(
        request,
        shortcuts,
        lambda r: {
            "id": r.id,
            "name": r.name,
            "text": r.text,
            "quick_replies": r.quick_replies,
            "shared": r.user_id is None,
        },
        where=visible(shortcuts, request[PRINCIPAL].user_id),
    )


@routes.get(
    "/api/v1/shortcuts/{shortcut_id}/render",
    "A shortcut rendered for one contact",
    query=(query_param("contact_id", required=True),),
)
async def render_shortcut(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    contact_id = int_query(request, "contact_id")
    if contact_id is None:
        raise InvalidPayload("say which contact: ?contact_id=<id>")
    async with request.app[DB].read() as conn:
        parts = await shortcut_ops.render(
            conn,
            principal.space_id,
            path_id(request, "shortcut_id"),
            contact_id,
            principal.user_id,
        )
    return web.json_response({"parts": [p.model_dump(mode="json") for p in parts]})


@routes.patch("/api/v1/shortcuts/{shortcut_id}", "Change a shortcut", body=ShortcutChange)
async def change_shortcut(request: web.Request) -> web.Response:
    change = await json_body(request, ShortcutChange)
    space_id = request[PRINCIPAL].space_id
    async with request.app[DB].write() as conn:
        shortcut_id = await owned(conn, request, shortcuts, "shortcut")
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


@routes.delete("/api/v1/shortcuts/{shortcut_id}", "Delete a shortcut")
async def delete_shortcut(request: web.Request) -> web.Response:
    return await delete_owned(request, shortcuts, "shortcut")
