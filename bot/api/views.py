"""`/api/v1/views`: saved filters over contacts, a person's own or shared with the space."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, Field

from bot.api.auth import PRINCIPAL
from bot.api.params import _body, _path_id
from bot.api.roles import require
from bot.errors import NotFound
from bot.keys import DB
from bot.storage.tables import shortcuts, views
from bot.workspace import contacts as contact_ops
from bot.workspace.filters import Group, compile_filter


class NewView(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    filter: Group
    shared: bool = True


class ViewChange(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    filter: Group | None = None


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


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/views", list_views)
    app.router.add_post("/api/v1/views", create_view)
    app.router.add_patch("/api/v1/views/{view_id}", change_view)
    app.router.add_delete("/api/v1/views/{view_id}", delete_owned)
