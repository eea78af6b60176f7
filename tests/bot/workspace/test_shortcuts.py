"""Shortcuts render per contact; privacy export and erase.

Covers `bot.workspace.privacy`, `bot.api.shortcuts`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.keys import DB
from bot.storage.tables import audit_log, contacts, identities, messages
from tests.bot.api.test_conversations import auth, open_conversation, people  # noqa: F401
from tests.bot.pipeline.test_webhooks import body, post
from tests.conftest import eventually, single
from tests.fakes.echo_channel import EchoChannel


async def test_shortcut_renders_variables_and_is_sent_by_an_agent(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    people: dict[str, Any],  # noqa: F811
) -> None:
    manager = auth(people["manager"])
    await client.post("/api/v1/fields", json={"key": "plan", "type": "text"}, headers=manager)
    bad = await client.post(
        "/api/v1/shortcuts", json={"name": "x", "text": "Hi {{contact.age}}"}, headers=manager
    )
    assert bad.status == 400 and "unknown variable {{contact.age}}" in (await bad.json())["detail"]
    made = await client.post(
        "/api/v1/shortcuts",
        headers=manager,
        json={
            "name": "hello",
            "text": "Hi {{contact.first_name}}, {{agent.name}} here. Your plan: "
            "{{ contact.fields.plan }}.",
            "quick_replies": ["Upgrade", "Thanks"],
        },
    )
    shortcut = (await made.json())["id"]

    conv = await open_conversation(client, app, echo)
    contact_id = await single(app, contacts.c.id)
    await client.put(
        f"/api/v1/contacts/{contact_id}/fields/plan", json={"value": "Pro"}, headers=manager
    )
    async with app[DB].write() as conn:
        await conn.execute(contacts.update().values(name="Rita Lee"))
    rendered = await (
        await client.get(
            f"/api/v1/shortcuts/{shortcut}/render",
            params={"contact_id": str(contact_id)},
            headers=auth(people["agent"]),
        )
    ).json()
    assert rendered["parts"][0]["text"] == "Hi Rita, Bea here. Your plan: Pro."
    assert [r["title"] for r in rendered["parts"][1]["replies"]] == ["Upgrade", "Thanks"]

    sent = await client.post(
        f"/api/v1/conversations/{conv}/messages",
        json={"shortcut_id": shortcut},
        headers=auth(people["agent"]),
    )
    assert sent.status == 202
    await eventually(lambda: _last_text(echo, "Hi Rita, Bea here. Your plan: Pro."))


async def test_export_then_erase(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    people: dict[str, Any],  # noqa: F811
) -> None:
    await open_conversation(client, app, echo)
    contact_id = await single(app, contacts.c.id)
    url = f"/api/v1/contacts/{contact_id}"
    await client.post(f"{url}/tags", json={"tags": ["vip"]}, headers=auth(people["agent"]))
    data = await (await client.get(f"{url}/export", headers=auth(people["agent"]))).json()
    assert data["identities"] == [{"channel_id": echo.id, "external_id": "u1"}]
    assert data["tags"] == ["vip"]
    assert data["messages"][0]["parts"] == [{"type": "text", "text": "talk to a human"}]

    refused = await client.post(f"{url}/erase", headers=auth(people["agent"]))
    assert refused.status == 403
    erased = await client.post(f"{url}/erase", headers=auth(people["manager"]))
    assert (await erased.json())["messages_redacted"] >= 3
    after = await (await client.get(f"{url}/export", headers=auth(people["agent"]))).json()
    assert after["tags"] == [] and after["fields"] == {}
    assert all(m["parts"] == [{"type": "text", "text": "[erased]"}] for m in after["messages"])
    async with app[DB].read() as conn:
        ids = (await conn.execute(sa.select(identities.c.external_id))).scalars().all()
        audit = (await conn.execute(sa.select(audit_log.c.action, audit_log.c.subject))).all()
        texts = (await conn.execute(sa.select(messages.c.parts))).scalars().all()
    assert "u1" not in ids
    assert [tuple(a) for a in audit] == [("erase", f"contact:{contact_id}")]
    assert not any("talk to a human" in str(t) for t in texts)


async def _last_text(echo: EchoChannel, text: str) -> bool:
    return bool(echo.sent) and echo.sent[-1].parts[0].text == text


async def test_an_erased_contact_is_in_no_view_is_sent_nothing_and_a_new_message_is_a_new_contact(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    people: dict[str, Any],  # noqa: F811
) -> None:
    manager = auth(people["manager"])
    conv = await open_conversation(client, app, echo)
    await eventually(lambda: len(echo.sent) == 3)  # welcome, handover notice, away
    erased_id = await single(app, contacts.c.id)
    assert (await client.post(f"/api/v1/contacts/{erased_id}/erase", headers=manager)).ok
    view = await (
        await client.post(
            "/api/v1/views", json={"name": "all", "filter": {"all": []}}, headers=manager
        )
    ).json()
    listed = await (
        await client.get(f"/api/v1/views/{view['id']}/contacts", headers=manager)
    ).json()
    assert listed["items"] == []
    everyone = await (await client.get("/api/v1/contacts", headers=manager)).json()
    assert everyone["items"] == []

    survey = {
        "name": "nps",
        "steps": [{"id": "q", "type": "question", "text": "Ok?", "answer": "yes_no"}],
    }
    made = await (await client.post("/api/v1/surveys", json=survey, headers=manager)).json()
    sent = await client.post(
        f"/api/v1/surveys/{made['id']}/send", json={"view_id": view["id"]}, headers=manager
    )
    assert (await sent.json())["started"] == 0
    reply = await client.post(
        f"/api/v1/conversations/{conv}/messages", json={"text": "still there?"}, headers=manager
    )
    assert reply.status == 400
    assert "closed" in (await reply.json())["detail"]
    await asyncio.sleep(0.3)
    assert len(echo.sent) == 3
    assert all(not o.recipient.startswith("erased") for o in echo.sent)

    await post(client, echo.id, body({"id": "2", "from": "u1", "text": "hello again"}))

    async def new_contact() -> list[int]:
        async with app[DB].read() as conn:
            return (
                (await conn.execute(sa.select(contacts.c.id).order_by(contacts.c.id)))
                .scalars()
                .all()
            )

    ids = await eventually(lambda: _two(new_contact))
    assert ids[0] == erased_id and ids[1] != erased_id
    await eventually(lambda: len(echo.sent) == 4)
    assert echo.sent[-1].recipient == "u1"


async def _two(rows: Any) -> list[int] | None:
    found = await rows()
    return found if len(found) == 2 else None


async def test_a_variable_takes_its_default_when_the_contact_has_no_value(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    people: dict[str, Any],  # noqa: F811
) -> None:
    manager = auth(people["manager"])
    made = await client.post(
        "/api/v1/shortcuts",
        headers=manager,
        json={
            "name": "hi",
            "text": "Hi {{contact.first_name | default: \"there\"}}, {{ agent.name|default:'us' }}"
            " here. {{contact.email}}",
        },
    )
    assert made.status == 201, await made.text()
    await open_conversation(client, app, echo)
    contact_id = await single(app, contacts.c.id)
    url = f"/api/v1/shortcuts/{(await made.json())['id']}/render"
    params = {"contact_id": str(contact_id)}
    rendered = await (await client.get(url, params=params, headers=manager)).json()
    assert rendered["parts"][0]["text"] == "Hi there, Bea here. "
    async with app[DB].write() as conn:
        await conn.execute(contacts.update().values(name="Rita Lee"))
    rendered = await (await client.get(url, params=params, headers=manager)).json()
    assert rendered["parts"][0]["text"] == "Hi Rita, Bea here. "
    bad = await client.post(
        "/api/v1/shortcuts",
        headers=manager,
        json={"name": "x", "text": 'Hi {{contact.nick | default: "you"}}'},
    )
    assert bad.status == 400 and "contact.nick" in (await bad.json())["detail"]
