"""API tokens: random, shown once, stored as a SHA-256 hash, each scoped to one space; a
token issued for a user acts as them: only while they are in its space (a billing token:
while they bill its organization), and never above their role there."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import error_response
from bot.keys import DB, LOCAL_PRINCIPALS
from bot.storage.tables import api_tokens, organization_members, space_members, spaces

TOKEN_PREFIX = "cc_"
PUBLIC = frozenset({"/api/v1/openapi.json", "/api/v1/docs"})
BILLING = ("/api/v1/usage", "/api/v1/organization/usage")
# admin: the organization's admin; manager: changes the space's settings;
# agent: works conversations and contacts; billing: reads usage only.
RANK = {"billing": 0, "agent": 1, "manager": 2, "admin": 3}


@dataclass(frozen=True)
class Principal:
    token_id: int
    space_id: int
    user_id: int | None
    role: str


PRINCIPAL = web.RequestKey("principal", Principal)


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough (no password stretching).
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(
    conn: AsyncConnection, space_id: int, user_id: int | None, name: str, role: str
) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await conn.execute(
        api_tokens.insert().values(
            space_id=space_id, user_id=user_id, name=name, role=role, token_hash=hash_token(token)
        )
    )
    return token


@web.middleware
async def auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every `/api/v1/` route but the spec needs `Authorization: Bearer <token>`."""
    if not request.path.startswith("/api/v1/") or request.path in PUBLIC:
        return await handler(request)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return _unauthorized("send 'Authorization: Bearer <token>'; `chancenter init` prints one")
    digest = hash_token(token.strip())
    principal = request.app[LOCAL_PRINCIPALS].get(digest)
    if principal is None:
        async with request.app[DB].read() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        api_tokens,
                        space_members.c.role.label("member_role"),
                        organization_members.c.role.label("org_role"),
                    )
                    .join(spaces, spaces.c.id == api_tokens.c.space_id)
                    .outerjoin(
                        space_members,
                        sa.and_(
                            space_members.c.space_id == api_tokens.c.space_id,
                            space_members.c.user_id == api_tokens.c.user_id,
                        ),
                    )
                    .outerjoin(
                        organization_members,
                        sa.and_(
                            organization_members.c.organization_id == spaces.c.organization_id,
                            organization_members.c.user_id == api_tokens.c.user_id,
                        ),
                    )
                    .where(api_tokens.c.token_hash == digest)
                    .where(api_tokens.c.revoked_at.is_(None))
                )
            ).first()
        if row is None:
            return _unauthorized("unknown or revoked token")
        role = str(row.role)
        if row.user_id is not None:
            held = ceiling(row.member_role, row.org_role, billing=role == "billing")
            if held is None:
                return _unauthorized(
                    "this token's user no longer bills this organization"
                    if role == "billing"
                    else "this token's user is no longer in its space"
                )
            role = min(role, held, key=RANK.__getitem__)
        principal = Principal(row.id, row.space_id, row.user_id, role)
    request[PRINCIPAL] = principal
    if principal.role == "billing" and request.path not in BILLING:
        # billing admins see usage figures, never conversations or contacts
        return error_response(403, "a billing token only reads usage (" + ", ".join(BILLING) + ")")
    return await handler(request)


def ceiling(member_role: str | None, org_role: str | None, *, billing: bool) -> str | None:
    """The highest role a token of this person may act with in a space, or None if none:
    a billing token while they are an admin or billing admin of the organization (in a
    space or not); any other while they are in the space, as its agent or manager, and as
    an admin only if they also administer the organization."""
    if billing:
        return "billing" if org_role in ("admin", "billing_admin") else None
    if member_role is None:
        return None
    if member_role == "manager" and org_role == "admin":
        return "admin"
    return member_role


def _unauthorized(detail: str) -> web.Response:
    response = error_response(401, detail)
    response.headers["WWW-Authenticate"] = "Bearer"
    return response
