"""`/api/v1/tokens`: API tokens of the space, each acting as the person it was issued for."""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, Field

from bot.api import _path_id
from bot.api_contacts import _body
from bot.auth import PRINCIPAL, create_token
from bot.errors import InvalidPayload, NotFound
from bot.ingest import now
from bot.keys import DB
from bot.roles import RANK, require
from bot.storage.tables import api_tokens


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["billing", "agent", "manager", "admin"] = "agent"


async def create_api_token(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    require(request, "manager")
    new = await _body(request, NewToken)
    if RANK[new.role] > RANK.get(principal.role, 0):
        raise InvalidPayload(f"a {principal.role} token cannot create a {new.role} token")
    async with request.app[DB].write() as conn:
        token = await create_token(conn, principal.space_id, principal.user_id, new.name, new.role)
    return web.json_response({"token": token, "name": new.name, "role": new.role}, status=201)


async def list_api_tokens(request: web.Request) -> web.Response:
    require(request, "manager")
    async with request.app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(api_tokens)
            .where(api_tokens.c.space_id == request[PRINCIPAL].space_id)
            .order_by(api_tokens.c.id)
        )
        items = [
            {"id": r.id, "name": r.name, "role": r.role, "revoked": r.revoked_at is not None}
            for r in rows
        ]
    return web.json_response({"items": items})


async def revoke_api_token(request: web.Request) -> web.Response:
    require(request, "manager")
    token_id = _path_id(request, "token_id")
    async with request.app[DB].write() as conn:
        done = await conn.execute(
            api_tokens.update()
            .where(api_tokens.c.id == token_id)
            .where(api_tokens.c.space_id == request[PRINCIPAL].space_id)
            .values(revoked_at=now())
        )
    if done.rowcount == 0:
        raise NotFound(f"no token {token_id} in this space")
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/tokens", list_api_tokens)
    app.router.add_post("/api/v1/tokens", create_api_token)
    app.router.add_delete("/api/v1/tokens/{token_id}", revoke_api_token)
