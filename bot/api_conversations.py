"""`/api/v1` for working conversations and managing tokens."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, Field

from bot.api import _path_id
from bot.api_contacts import _body
from bot.auth import PRINCIPAL, create_token
from bot.errors import InvalidPayload, NotFound
from bot.ingest import now
from bot.keys import DB, SENDER
from bot.model import Part, TextPart, parts_adapter
from bot.roles import RANK, require
from bot.shortcuts import render
from bot.storage.tables import api_tokens, conversations, messages, outbox, space_members


class AgentMessage(BaseModel):
    """Text, or parts for anything richer (quick replies, media by URL, location)."""

    text: str | None = Field(None, min_length=1, max_length=10_000)
    parts: list[Part] | None = Field(None, min_length=1, max_length=10)
    shortcut_id: int | None = Field(
        None, ge=1, le=2**63 - 1, description="rendered for the contact"
    )


class Assignment(BaseModel):
    user_id: int | None = Field(None, ge=1, le=2**63 - 1)


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["billing", "agent", "manager", "admin"] = "agent"


async def _conversation(conn: Any, space_id: int, conversation_id: int) -> Any:
    row = (
        await conn.execute(
            sa.select(conversations)
            .where(conversations.c.id == conversation_id)
            .where(conversations.c.space_id == space_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"no conversation {conversation_id} in this space")
    return row


async def send_message(request: web.Request) -> web.Response:
    """Queue an agent's message to the contact, on the conversation's channel.

    An `Idempotency-Key` header makes a retried request a no-op.
    """
    principal = request[PRINCIPAL]
    body = await _body(request, AgentMessage)
    parts: list[Part] = list(body.parts or ([TextPart(text=body.text)] if body.text else []))
    if not parts and body.shortcut_id is None:
        raise InvalidPayload("send text, parts or a shortcut_id")
    key = request.headers.get("Idempotency-Key")
    async with request.app[DB].write() as conn:
        conv = await _conversation(conn, principal.space_id, _path_id(request, "conversation_id"))
        if body.shortcut_id is not None:
            parts += await render(
                conn, principal.space_id, body.shortcut_id, conv.contact_id, principal.user_id
            )
        if conv.status != "open":
            raise InvalidPayload(
                "the conversation is closed; the contact's next message opens a new one"
            )
        at = now()
        message_id = (
            await conn.execute(
                request.app[DB]
                .insert(messages)
                .values(
                    space_id=conv.space_id,
                    conversation_id=conv.id,
                    channel_id=conv.channel_id,
                    direction="out",
                    parts=parts_adapter.dump_python(parts, mode="json"),
                    status="pending",
                    sender_user_id=principal.user_id,
                    created_at=at,
                    dedupe_key=f"api:{principal.token_id}:{key}"[:64] if key else None,
                )
                .on_conflict_do_nothing()
                .returning(messages.c.id)
            )
        ).scalar()
        if message_id is not None:
            await conn.execute(
                outbox.insert().values(
                    message_id=message_id, channel_id=conv.channel_id, next_attempt_at=at
                )
            )
    request.app[SENDER].notify()
    return web.json_response(
        {"id": message_id, "status": "pending", "duplicate": message_id is None}, status=202
    )


async def assign(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    body = await _body(request, Assignment)
    async with request.app[DB].write() as conn:
        conv = await _conversation(conn, principal.space_id, _path_id(request, "conversation_id"))
        if body.user_id is not None:
            member = (
                await conn.execute(
                    sa.select(space_members.c.user_id)
                    .where(space_members.c.space_id == principal.space_id)
                    .where(space_members.c.user_id == body.user_id)
                )
            ).first()
            if member is None:
                raise NotFound(f"no user {body.user_id} in this space")
        await conn.execute(
            conversations.update()
            .where(conversations.c.id == conv.id)
            .values(assignee_id=body.user_id)
        )
    return web.json_response({"id": conv.id, "assignee_id": body.user_id})


async def close(request: web.Request) -> web.Response:
    """Close it: the bot answers again when the contact writes next (a new conversation)."""
    principal = request[PRINCIPAL]
    async with request.app[DB].write() as conn:
        conv = await _conversation(conn, principal.space_id, _path_id(request, "conversation_id"))
        await conn.execute(
            conversations.update()
            .where(conversations.c.id == conv.id)
            .values(status="closed", closed_at=now())
        )
    return web.json_response({"id": conv.id, "status": "closed"})


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
    app.router.add_post("/api/v1/conversations/{conversation_id}/messages", send_message)
    app.router.add_post("/api/v1/conversations/{conversation_id}/assign", assign)
    app.router.add_post("/api/v1/conversations/{conversation_id}/close", close)
    app.router.add_get("/api/v1/tokens", list_api_tokens)
    app.router.add_post("/api/v1/tokens", create_api_token)
    app.router.add_delete("/api/v1/tokens/{token_id}", revoke_api_token)
