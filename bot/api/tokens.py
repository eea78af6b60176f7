"""`/api/v1/tokens`: API tokens of the space, each acting as the person it was issued for.

A manager may issue one for another person of the space (their replies are then signed
with that person's name), never with a role above theirs."""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, Field

from bot.api.auth import PRINCIPAL, create_token, hash_token
from bot.api.openapi import Routes
from bot.api.params import json_body, path_id
from bot.api.roles import RANK, highest_role, require
from bot.clock import now
from bot.errors import InvalidPayload, NotFound
from bot.keys import DB
from bot.storage.tables import api_tokens, users


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["billing", "agent", "manager", "admin"] = "agent"
    user_id: int | None = Field(
        None,
        ge=1,
        le=2**63 - 1,
        description="the person the token acts as (a member of the space; for a billing "
        "token, an admin or billing admin of the organization); default: you",
    )


routes = Routes()


@routes.post(
    "/api/v1/tokens",
    "Create a token (shown once) acting as `user_id` (a member of the space; "
    "default: you), never above their role",
    body=NewToken,
    status=201,
)
async def create_api_token(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    require(request, "manager")
    new = await json_body(request, NewToken)
    if RANK[new.role] > RANK.get(principal.role, 0):
        raise InvalidPayload(f"a {principal.role} token cannot create a {new.role} token")
    user_id = principal.user_id if new.user_id is None else new.user_id
    async with request.app[DB].write() as conn:
        if user_id is not None:
            held = await highest_role(conn, principal.space_id, user_id, new.role)
            if held is None:
                raise InvalidPayload(
                    f"user {user_id} is not an admin or billing admin of the organization; "
                    "billing tokens are theirs"
                )
            if RANK[new.role] > RANK[held]:
                raise InvalidPayload(
                    f"user {user_id} acts here as {held} at most; a {new.role} token for "
                    "them would act above their role"
                )
        token = await create_token(conn, principal.space_id, user_id, new.name, new.role)
        token_id = (
            await conn.execute(
                sa.select(api_tokens.c.id).where(api_tokens.c.token_hash == hash_token(token))
            )
        ).scalar_one()
    return web.json_response(
        {"id": token_id, "token": token, "name": new.name, "role": new.role, "user_id": user_id},
        status=201,
    )


@routes.get(
    "/api/v1/tokens",
    "The space's API tokens (never their secrets), each with whose it is "
    "(user_id, user_name, user_email)",
)
async def list_api_tokens(request: web.Request) -> web.Response:
    """The space's tokens (never their secrets), each with the person it acts as."""
    require(request, "manager")
    async with request.app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(
                api_tokens,
                users.c.name.label("user_name"),
                users.c.email.label("user_email"),
            )
            .outerjoin(users, users.c.id == api_tokens.c.user_id)
            .where(api_tokens.c.space_id == request[PRINCIPAL].space_id)
            .order_by(api_tokens.c.id)
        )
        items = [
            {
                "id": r.id,
                "name": r.name,
                "role": r.role,
                "revoked": r.revoked_at is not None,
                "user_id": r.user_id,
                "user_name": r.user_name,
                "user_email": r.user_email,
            }
            for r in rows
        ]
    return web.json_response({"items": items})


@routes.delete("/api/v1/tokens/{token_id}", "Revoke a token")
async def revoke_api_token(request: web.Request) -> web.Response:
    require(request, "manager")
    token_id = path_id(request, "token_id")
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
