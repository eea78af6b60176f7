"""Tenant isolation: a token of one space never reaches another space's objects."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.api.auth import create_token
from bot.keys import DB
from bot.storage.tables import (
    api_tokens,
    contacts,
    conversations,
    field_definitions,
    shortcuts,
    surveys,
    teams,
    views,
)
from bot.workspace.bootstrap import add_admin, create_space
from tests.bot.api.test_conversations import auth, open_conversation, people  # noqa: F401
from tests.fakes.echo_channel import EchoChannel

BODIES: dict[str, Any] = {
    "/api/v1/conversations/{conversation_id}/messages": {"text": "hi"},
    "/api/v1/conversations/{conversation_id}/notes": {"text": "hi"},
    "/api/v1/conversations/{conversation_id}/assign": {"user_id": None},
    "/api/v1/contacts/{contact_id}/assign": {"user_id": None},
    "/api/v1/contacts/{contact_id}": {"name": "x"},
    "/api/v1/contacts/{contact_id}/fields/{key}": {"value": "x"},
    "/api/v1/contacts/{contact_id}/tags": {"tags": ["x"]},
    "/api/v1/contacts/{contact_id}/merge": {"other_id": 1},
    "/api/v1/users/{user_id}": {"availability": "away"},
    "/api/v1/teams/{team_id}/members": {"user_id": 1},
    "/api/v1/fields/{field_id}": {"label": "x"},
    "/api/v1/teams/{team_id}": {"name": "x"},
    "/api/v1/views/{view_id}": {"name": "x"},
    "/api/v1/shortcuts/{shortcut_id}": {"name": "x"},
    "/api/v1/organization/members/{user_id}": {"role": "member"},
    "/api/v1/surveys/{survey_id}/send": {"contact_ids": [1]},
    "/api/v1/automations/{automation_id}": {"enabled": False},
    "/api/v1/webhooks/{webhook_id}": {"description": "x"},
    "/api/v1/channels/{channel}": {"name": "x"},
}


async def test_every_endpoint_with_an_id_answers_404_to_another_space(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    people: dict[str, Any],  # noqa: F811
) -> None:
    manager = auth(people["manager"])
    await client.post("/api/v1/fields", json={"key": "plan", "type": "text"}, headers=manager)
    await client.post("/api/v1/views", headers=manager, json={"name": "all", "filter": {"all": []}})
    await client.post("/api/v1/shortcuts", json={"name": "s", "text": "hi"}, headers=manager)
    await client.post("/api/v1/teams", json={"name": "Support"}, headers=manager)
    survey = {
        "name": "s",
        "steps": [{"id": "q", "type": "question", "text": "?", "answer": "text"}],
    }
    assert (await client.post("/api/v1/surveys", json=survey, headers=manager)).status == 201
    automation = {"name": "a", "trigger": {"on": "message_received"}, "actions": [{"tag": "x"}]}
    created = await client.post("/api/v1/automations", json=automation, headers=manager)
    assert created.status == 201
    offer = {"name": "b", "channel_id": echo.id, "view_id": 1, "message": {"text": "hi"}}
    broadcast = await client.post("/api/v1/broadcasts", json=offer, headers=manager)
    assert broadcast.status == 201, await broadcast.text()
    hook = {"url": "http://127.0.0.1:1/hook", "events": ["*"]}
    webhook = await client.post("/api/v1/webhooks", json=hook, headers=manager)
    assert webhook.status == 201, await webhook.text()
    await open_conversation(client, app, echo)
    async with app[DB].write() as conn:
        elsewhere = await create_space(conn, "Initech", "Main", default=False, webchat=False)
        await add_admin(conn, elsewhere, "Zed", "zed@example.com")
    zed = {"name": "Zed", "email": "zed@example.com"}
    invited = await client.post("/api/v1/users", json=zed, headers=manager)
    assert invited.status == 202
    async with app[DB].write() as conn:
        ids = {
            "invitation_id": (await invited.json())["id"],
            "conversation_id": (await conn.execute(sa.select(conversations.c.id))).scalar_one(),
            "contact_id": (await conn.execute(sa.select(contacts.c.id))).scalar_one(),
            "view_id": (await conn.execute(sa.select(views.c.id))).scalar_one(),
            "field_id": (await conn.execute(sa.select(field_definitions.c.id))).scalar_one(),
            "survey_id": (await conn.execute(sa.select(surveys.c.id))).scalar_one(),
            "automation_id": (await created.json())["id"],
            "broadcast_id": (await broadcast.json())["id"],
            "webhook_id": (await webhook.json())["id"],
            "delivery_id": 1,
            "shortcut_id": (await conn.execute(sa.select(shortcuts.c.id))).scalar_one(),
            "token_id": (await conn.execute(sa.select(sa.func.min(api_tokens.c.id)))).scalar(),
            "merge_id": 1,
            "user_id": people["admin_id"],
            "team_id": (await conn.execute(sa.select(sa.func.min(teams.c.id)))).scalar(),
            "key": "plan",
            "name": "x",
            "channel": echo.id,  # a string id
        }
        other = await create_space(conn, "Rival", "Rival", default=False, webchat=False)
        stranger = auth(await create_token(conn, other.space_id, None, "rival", "admin"))

    gone = await client.delete(f"/api/v1/invitations/{ids['invitation_id']}", headers=stranger)
    assert gone.status == 404
    spec = await (await client.get("/api/v1/openapi.json")).json()
    checked = 0
    for path, operations in spec["paths"].items():
        if "{" not in path:
            continue
        url = path.format(**ids)
        for method in operations:
            params = {"contact_id": str(ids["contact_id"])} if "render" in path else None
            resp = await client.request(
                method, url, headers=stranger, params=params, json=BODIES.get(path)
            )
            assert resp.status == 404, f"{method.upper()} {url}: {resp.status}"
            checked += 1
    assert checked >= 30  # every id route in the document
    # the other space's requests changed nothing: the channel is there, as it was
    listed = await client.get("/api/v1/channels", headers=manager)
    assert (echo.id, echo.config.name) in [
        (c["id"], c["name"]) for c in (await listed.json())["items"]
    ]

    # lists show nothing of the other space
    for path in (
        "/api/v1/conversations",
        "/api/v1/contacts",
        "/api/v1/views",
        "/api/v1/shortcuts",
        "/api/v1/fields",
        "/api/v1/users",
        "/api/v1/teams",
        "/api/v1/tags",
        "/api/v1/surveys",
        "/api/v1/automations",
        "/api/v1/broadcasts",
        "/api/v1/invitations",
        "/api/v1/channels",
    ):
        items = (await (await client.get(path, headers=stranger)).json())["items"]
        assert items == [], path
    listed = (await (await client.get("/api/v1/tokens", headers=stranger)).json())["items"]
    assert [t["name"] for t in listed] == ["rival"]
    filtered = await client.get(
        "/api/v1/contacts",
        headers=stranger,
        params={
            "filter": json.dumps({"all": [{"field": "channel", "op": "is", "value": echo.id}]})
        },
    )
    assert (await filtered.json())["items"] == []
