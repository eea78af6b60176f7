"""`/api/v1/views`: saved filters over contacts, a person's own or shared with the space."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, Field

from bot.api.auth import PRINCIPAL, Principal
from bot.api.openapi import Routes
from bot.api.params import json_body, path_id, space_items, space_row
from bot.api.roles import require
from bot.keys import DB
from bot.storage.tables import views
from bot.workspace import contacts as contact_ops
from bot.workspace.filters import Group, compile_filter
from bot.workspace.triggers import changed


class NewView(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    filter: Group
    shared: bool = True


class ViewChange(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    filter: Group | None = None


routes = Routes()


@routes.get("/api/v1/views", "Saved views: shared, and the caller's own")
async def list_views(request: web.Request) -> web.Response:
    return await space_items(
        request,
        views,
        lambda r: {"id": r.id, "name": r.name, "filter": r.filter, "shared": r.user_id is None},
        where=visible(views, request[PRINCIPAL].user_id),
    )


@routes.post("/api/v1/views", "Save a view (its filter is checked first)", body=NewView, status=201)
async def create_view(request: web.Request) -> web.Response:
    new = await json_body(request, NewView)
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


@routes.patch("/api/v1/views/{view_id}", "Rename a view or change its filter", body=ViewChange)
async def change_view(request: web.Request) -> web.Response:
    change = await json_body(request, ViewChange)
    space_id = request[PRINCIPAL].space_id
    async with request.app[DB].write() as conn:
        view_id = await owned(conn, request, views, "view")
        values: dict[str, Any] = {}
        if change.name is not None:
            values["name"] = change.name
        if change.filter is not None:
            compile_filter(change.filter, space_id, await contact_ops.field_defs(conn, space_id))
            values["filter"] = change.filter.model_dump(mode="json", exclude_none=True)
        if values:
            await conn.execute(views.update().where(views.c.id == view_id).values(**values))
    return web.json_response({"id": view_id, **values})


@routes.delete("/api/v1/views/{view_id}", "Delete a view")
async def delete_view(request: web.Request) -> web.Response:
    return await delete_owned(request, views, "view")


async def owned(conn: Any, request: web.Request, table: sa.Table, what: str) -> int:
    """A view or shortcut the caller may change: their own, or a shared one if a manager."""
    principal = request[PRINCIPAL]
    item_id = path_id(request, f"{what}_id")
    row = await space_row(
        conn,
        table,
        principal.space_id,
        item_id,
        what,
        table.c.user_id,
        where=visible(table, principal.user_id),
    )
    if row.user_id is None:
        require(request, "manager")
    return item_id


async def delete_owned(request: web.Request, table: sa.Table, what: str) -> web.Response:
    async with request.app[DB].write() as conn:
        item_id = await owned(conn, request, table, what)
        await conn.execute(table.delete().where(table.c.id == item_id))
        await changed(conn, request[PRINCIPAL].space_id)  # automations may name it
    return web.Response(status=204)


def visible(table: sa.Table, user_id: int | None) -> Any:
    """Shared with the space (no owner), or this person's own (views, shortcuts)."""
    return sa.or_(table.c.user_id.is_(None), table.c.user_id == user_id)


async def view_filter(conn: Any, principal: Principal, view_id: int) -> Group:
    """The filter of a view the caller sees, else NotFound."""
    row = await space_row(
        conn,
        views,
        principal.space_id,
        view_id,
        "view",
        views.c.filter,
        where=visible(views, principal.user_id),
    )
    return Group.model_validate(row.filter)
