"""Agents work conversations through the API: reply, assign, close; tokens and roles."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.api.auth import create_token
from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import conversations, spaces, work_items
from bot.workspace.bootstrap import SpaceCreated, add_admin
from tests.bot.pipeline.test_webhooks import body, post
from tests.conftest import count, eventually
from tests.fakes.echo_channel import EchoChannel


@pytest.fixture
async def people(app: Application) -> dict[str, Any]:
    async with app[DB].write() as conn:
        org = (
            await conn.execute(
                sa.select(spaces.c.organization_id).where(spaces.c.id == app[DEFAULT_SPACE])
            )
        ).scalar_one()
        admin = await add_admin(
            conn, SpaceCreated(org, app[DEFAULT_SPACE], None), "Bea", "bea@example.com"
        )
        tokens = {
            role: await create_token(conn, app[DEFAULT_SPACE], admin, role, role)
            for role in ("agent", "manager", "admin")
        }
    return {"admin_id": admin, **tokens}


def auth(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


async def open_conversation(client: TestClient, app: Application, echo: EchoChannel) -> int:
    await post(client, echo.id, body({"id": "1", "from": "u1", "text": "talk to a human"}))

    async def done() -> bool:
        return await count(app, work_items) == 0

    await eventually(done)
    async with app[DB].read() as conn:
        return (await conn.execute(sa.select(conversations.c.id))).scalar_one()


async def test_agent_replies_assigns_and_closes(
    client: TestClient, app: Application, echo: EchoChannel, people: dict[str, Any]
) -> None:
    conv = await open_conversation(client, app, echo)
    await eventually(lambda: len(echo.sent) == 3)  # welcome, handover notice, away
    headers = auth(people["agent"], **{"Idempotency-Key": "k1"})
    url = f"/api/v1/conversations/{conv}/messages"
    first = await client.post(url, json={"text": "Hi, Bea here. How can I help?"}, headers=headers)
    assert first.status == 202
    again = await client.post(url, json={"text": "Hi, Bea here. How can I help?"}, headers=headers)
    assert (await again.json())["duplicate"] is True
    await eventually(lambda: len(echo.sent) == 4)
    assert echo.sent[3].sender_name == "Bea"
    assert echo.sent[3].parts[0].text == "Hi, Bea here. How can I help?"

    resp = await client.post(
        f"/api/v1/conversations/{conv}/assign",
        json={"user_id": people["admin_id"]},
        headers=auth(people["agent"]),
    )
    assert (await resp.json())["assignee_id"] == people["admin_id"]
    resp = await client.post(
        f"/api/v1/conversations/{conv}/assign", json={"user_id": 999}, headers=auth(people["agent"])
    )
    assert resp.status == 404

    assert (
        await client.post(f"/api/v1/conversations/{conv}/close", headers=auth(people["agent"]))
    ).status == 200
    closed = await client.post(url, json={"text": "still there?"}, headers=auth(people["agent"]))
    assert closed.status == 400 and "closed" in (await closed.json())["detail"]
    # the contact writes again: a new conversation, answered by the bot
    await post(client, echo.id, body({"id": "2", "from": "u1", "text": "pricing"}))
    await eventually(lambda: len(echo.sent) == 6)
    assert echo.sent[5].parts[0].text.startswith("Starter is free")

    # the list filters by what an agent's inbox needs
    agent = auth(people["agent"])

    async def ids(**query: str) -> list[int]:
        resp = await client.get("/api/v1/conversations", params=query, headers=agent)
        assert resp.status == 200, await resp.text()
        return [c["id"] for c in (await resp.json())["items"]]

    newer = conv + 1
    assert await ids() == [newer, conv]
    assert await ids(assignee_id=str(people["admin_id"])) == [conv]
    assert await ids(assignee_id="0") == [newer]
    assert await ids(status="open", handler="bot") == [newer]
    assert await ids(channel_id=echo.id, status="closed") == [conv]
    assert await ids(channel_id="elsewhere") == []
    bad = await client.get("/api/v1/conversations?handler=robot", headers=agent)
    assert bad.status == 400 and "bot, flow, waiting, agent" in (await bad.json())["detail"]


async def test_roles(client: TestClient, people: dict[str, Any]) -> None:
    field = {"key": "plan", "type": "text"}
    agent = await client.post("/api/v1/fields", json=field, headers=auth(people["agent"]))
    assert agent.status == 403 and "manager" in (await agent.json())["detail"]
    assert (
        await client.post("/api/v1/fields", json=field, headers=auth(people["manager"]))
    ).status == 201
    assert (await client.get("/api/v1/tokens", headers=auth(people["agent"]))).status == 403
    up = await client.post(
        "/api/v1/tokens", json={"name": "x", "role": "admin"}, headers=auth(people["manager"])
    )
    assert up.status == 400
    made = await client.post(
        "/api/v1/tokens", json={"name": "ci", "role": "agent"}, headers=auth(people["manager"])
    )
    new = (await made.json())["token"]
    assert (await client.get("/api/v1/conversations", headers=auth(new))).status == 200
    listed = await (await client.get("/api/v1/tokens", headers=auth(people["admin"]))).json()
    token_id = next(t["id"] for t in listed["items"] if t["name"] == "ci")
    assert all("token" not in t for t in listed["items"])
    assert (
        await client.delete(f"/api/v1/tokens/{token_id}", headers=auth(people["admin"]))
    ).status == 204
    assert (await client.get("/api/v1/conversations", headers=auth(new))).status == 401


async def test_every_message_says_who_sent_it_and_notes_are_listed_on_request(
    client: TestClient, app: Application, echo: EchoChannel, people: dict[str, Any]
) -> None:
    conv = await open_conversation(client, app, echo)
    await eventually(lambda: len(echo.sent) == 3)  # welcome, handover notice, away
    headers = auth(people["agent"])
    url = f"/api/v1/conversations/{conv}"
    assert (await client.post(f"{url}/messages", json={"text": "Bea here"}, headers=headers)).ok
    note = await client.post(f"{url}/notes", json={"text": "VIP: be quick"}, headers=headers)
    assert note.status == 201
    listed = (await (await client.get(f"{url}/messages", headers=headers)).json())["items"]
    assert [(m["direction"], m["sender"]["type"]) for m in listed] == [
        ("in", "contact"),
        ("out", "bot"),
        ("out", "bot"),
        ("out", "flow"),
        ("out", "user"),
    ]
    assert [m["sender"]["id"] for m in listed[1:3]] == ["builtin", "builtin"]
    assert listed[3]["sender"]["id"] == "away"
    assert listed[4]["sender"]["id"] == people["admin_id"]
    everything = await (
        await client.get(f"{url}/messages", params={"include": "notes"}, headers=headers)
    ).json()
    notes = [m for m in everything["items"] if m["direction"] == "note"]
    assert [(n["parts"][0]["text"], n["sender"]["id"]) for n in notes] == [
        ("VIP: be quick", people["admin_id"])
    ]
    await eventually(lambda: len(echo.sent) == 4)  # the agent's reply; the note goes nowhere
    assert "VIP: be quick" not in [p.text for o in echo.sent for p in o.parts if p.type == "text"]
    typo = await client.get(f"{url}/messages", params={"inclde": "notes"}, headers=headers)
    assert typo.status == 400 and "inclde" in (await typo.json())["detail"]
