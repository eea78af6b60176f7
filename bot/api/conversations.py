"""`/api/v1` for working conversations: reply, assign, close; and assigning a contact,
which is what an assignment is (the conversations follow their contact)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from bot.api.auth import PRINCIPAL
from bot.api.openapi import Routes
from bot.api.params import json_body, path_id
from bot.errors import InvalidPayload
from bot.model import Part, TextPart
from bot.workspace.agent_work import AgentWork


class AgentMessage(BaseModel):
    """Text, or parts for anything richer (quick replies, media by URL, location)."""

    text: str | None = Field(None, min_length=1, max_length=10_000)
    parts: list[Part] | None = Field(None, min_length=1, max_length=10)
    shortcut_id: int | None = Field(
        None, ge=1, le=2**63 - 1, description="rendered for the contact"
    )


class Note(BaseModel):
    """Internal: the contact never sees it."""

    text: str = Field(min_length=1, max_length=10_000)


class Assignment(BaseModel):
    """`user_id` (null: nobody), `team_id` (alone: round robin among its available members,
    else the team's queue), or both."""

    user_id: int | None = Field(None, ge=1, le=2**63 - 1)
    team_id: int | None = Field(None, ge=1, le=2**63 - 1)


routes = Routes()


@routes.post(
    "/api/v1/conversations/{conversation_id}/messages",
    "Send a message to the contact as an agent (Idempotency-Key honoured)",
    body=AgentMessage,
    status=202,
)
async def send_message(request: web.Request) -> web.Response:
    """Queue an agent's message to the contact, on the conversation's channel.

    An `Idempotency-Key` header makes a retried request a no-op.
    """
    principal = request[PRINCIPAL]
    body = await json_body(request, AgentMessage)
    parts: list[Part] = list(body.parts or ([TextPart(text=body.text)] if body.text else []))
    if not parts and body.shortcut_id is None:
        raise InvalidPayload("send text, parts or a shortcut_id")
    key = request.headers.get("Idempotency-Key")
    message_id = await _work(request).reply(
        path_id(request, "conversation_id"),
        principal.user_id,
        parts,
        f"api:{principal.token_id}:{key}" if key else None,
        body.shortcut_id,
    )
    return web.json_response(
        {"id": message_id, "status": "pending", "duplicate": message_id is None}, status=202
    )


@routes.post(
    "/api/v1/conversations/{conversation_id}/notes",
    "Add an internal note (never sent; listed with ?include=notes)",
    body=Note,
    status=201,
)
async def add_note(request: web.Request) -> web.Response:
    """A note for the other agents, listed with `?include=notes`."""
    body = await json_body(request, Note)
    user_id = request[PRINCIPAL].user_id
    note_id = await _work(request).note(path_id(request, "conversation_id"), user_id, body.text)
    return web.json_response({"id": note_id, "direction": "note"}, status=201)


@routes.post(
    "/api/v1/conversations/{conversation_id}/assign",
    "Assign to a user (null unassigns) or a team (round robin, else its queue); "
    "the contact is assigned with it",
    body=Assignment,
)
async def assign(request: web.Request) -> web.Response:
    """To a user, a team (round robin inside it), or nobody (`{}` or `user_id: null`);
    the contact is assigned with it."""
    by = request[PRINCIPAL].user_id
    body = await json_body(request, Assignment)
    conversation_id = path_id(request, "conversation_id")
    if body.team_id is not None and "user_id" not in body.model_fields_set:
        _, conv = await _work(request).assign_team(conversation_id, body.team_id, by)
    else:
        conv = await _work(request).assign(conversation_id, body.user_id, by, body.team_id)
    return web.json_response(
        {
            "id": conv.id,
            "assignee_id": conv.assignee_id,
            "team_id": conv.team_id,
            "handler": conv.handler,
        }
    )


@routes.post(
    "/api/v1/contacts/{contact_id}/assign",
    "Assign the contact: user_id (null: nobody), team_id alone (round robin in the "
    "team), or both; its open conversations follow",
    body=Assignment,
)
async def assign_contact(request: web.Request) -> web.Response:
    """The contact's assignee and team, with or without a conversation; its open
    conversations follow (a waiting one is taken by the assignee)."""
    principal = request[PRINCIPAL]
    body = await json_body(request, Assignment)
    given = body.model_fields_set
    if not given:
        raise InvalidPayload("give user_id (null: nobody), team_id, or both")
    user_id, team_id, followed = await _work(request).assign_contact(
        path_id(request, "contact_id"),
        body.user_id,
        body.team_id,
        principal.user_id,
        pick="user_id" not in given,
    )
    return web.json_response(
        {
            "id": path_id(request, "contact_id"),
            "assignee_id": user_id,
            "team_id": team_id,
            "conversation_ids": followed,
        }
    )


@routes.post(
    "/api/v1/conversations/{conversation_id}/close",
    "Close; the contact's next message opens a new one with the bot "
    "(with the space's csat_survey, the survey is asked in this conversation)",
    said="closed",
    errors=(401, 404),
)
async def close(request: web.Request) -> web.Response:
    """Close it: the bot answers again when the contact writes next (a new conversation).

    With the space's `csat_survey`, its question is asked in this conversation, which
    the contact's answer still reaches (the surveys extension's `ON_CLOSE` hook); closing
    again changes nothing."""
    conversation_id = path_id(request, "conversation_id")
    await _work(request).close(conversation_id)
    return web.json_response({"id": conversation_id, "status": "closed"})


def _work(request: web.Request) -> AgentWork:
    return AgentWork(request.app, request[PRINCIPAL].space_id)
