"""One contact representation (fields, tags, assignee, team) everywhere; PATCH edits it."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.storage.tables import contacts
from tests.bot.api.test_conversations import auth, open_conversation, people  # noqa: F401
from tests.conftest import single
from tests.fakes.echo_channel import EchoChannel


async def test_a_contact_reads_back_with_its_fields_and_tags_everywhere(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    people: dict[str, Any],  # noqa: F811
) -> None:
    await open_conversation(client, app, echo)
    contact_id = await single(app, contacts.c.id)
    manager = auth(people["manager"])
    await client.post("/api/v1/fields", json={"key": "plan", "type": "text"}, headers=manager)
    await client.post("/api/v1/fields", json={"key": "renews", "type": "date"}, headers=manager)
    url = f"/api/v1/contacts/{contact_id}"
    await client.put(f"{url}/fields/plan", json={"value": "Pro"}, headers=manager)
    await client.put(f"{url}/fields/renews", json={"value": "2027-01-31"}, headers=manager)
    await client.post(f"{url}/tags", json={"tags": ["vip", "beta"]}, headers=manager)

    one = await (await client.get(url, headers=manager)).json()
    assert one["fields"] == {"plan": "Pro", "renews": "2027-01-31"}
    assert one["tags"] == ["beta", "vip"]
    assert {"assignee_id", "team_id", "status"} <= set(one)
    assert one["identities"] == [{"channel_id": echo.id, "external_id": "u1"}]
    listed = (await (await client.get("/api/v1/contacts", headers=manager)).json())["items"]
    assert listed == [{k: v for k, v in one.items() if k != "identities"}]


async def test_patch_edits_name_email_phone_language_and_null_clears(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    people: dict[str, Any],  # noqa: F811
) -> None:
    await open_conversation(client, app, echo)
    contact_id = await single(app, contacts.c.id)
    agent = auth(people["agent"])
    url = f"/api/v1/contacts/{contact_id}"
    changed = await client.patch(
        url,
        json={"name": "Ana Lima", "email": "ana@example.com", "phone": "+351 912 345 678"},
        headers=agent,
    )
    assert changed.status == 200
    shown = await changed.json()
    assert (shown["name"], shown["email"], shown["phone"]) == (
        "Ana Lima",
        "ana@example.com",
        "+351 912 345 678",
    )
    cleared = await (await client.patch(url, json={"email": None}, headers=agent)).json()
    assert cleared["email"] is None and cleared["name"] == "Ana Lima"
    for bad in ({"email": "not an email"}, {"language": "english please"}, {"nmae": "x"}):
        resp = await client.patch(url, json=bad, headers=agent)
        assert resp.status == 400, bad
    assert (await client.patch("/api/v1/contacts/999", json={}, headers=agent)).status == 404


async def test_patch_subscribed_opts_out_for_agents_and_back_in_for_managers(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    people: dict[str, Any],  # noqa: F811
) -> None:
    await open_conversation(client, app, echo)
    url = f"/api/v1/contacts/{await single(app, contacts.c.id)}"
    agent, manager = auth(people["agent"]), auth(people["manager"])
    assert (await (await client.get(url, headers=agent)).json())["unsubscribed_at"] is None
    out = await (await client.patch(url, json={"subscribed": False}, headers=agent)).json()
    assert out["unsubscribed_at"] is not None
    again = await (await client.patch(url, json={"subscribed": False}, headers=agent)).json()
    assert again["unsubscribed_at"] == out["unsubscribed_at"]  # the first opt-out's date
    assert await single(app, contacts.c.unsubscribed_at) is not None
    back = await client.patch(url, json={"subscribed": True}, headers=agent)
    assert back.status == 403  # consent again is a manager's call
    assert (await client.patch(url, json={"subscribed": None}, headers=agent)).status == 400
    back = await client.patch(url, json={"subscribed": True, "name": "Ana"}, headers=manager)
    assert back.status == 200
    shown = await back.json()
    assert shown["unsubscribed_at"] is None and shown["name"] == "Ana"
