"""`/api/v1/webhooks`: managers subscribe URLs to events; the secret is answered once and
stored encrypted; subscriptions are changed, switched, rotated, tested and removed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.keys import DB
from bot.storage.tables import webhook_deliveries, webhooks
from tests.bot.api.test_conversations import auth, people  # noqa: F401
from tests.bot.delivery.test_webhooks import deliveries, say, subscribe
from tests.conftest import count, eventually
from tests.fakes.echo_channel import EchoChannel
from tests.fakes.webhook_receiver import Receiver, receiving


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as receiver:
        yield receiver


async def test_the_secret_is_answered_once_and_kept_encrypted(
    client: TestClient,
    app: Application,
    people: dict[str, Any],  # noqa: F811
    receiver: Receiver,
) -> None:
    manager = auth(people["manager"])
    made = await subscribe(client, manager, receiver.url(), "message.received", "contact.created")
    secret = made["secret"]
    assert secret.startswith("whsec_") and len(secret) == len("whsec_") + 32
    assert made["events"] == ["contact.created", "message.received"] and made["enabled"]
    listed = await (await client.get("/api/v1/webhooks", headers=manager)).json()
    shown = await (await client.get(f"/api/v1/webhooks/{made['id']}", headers=manager)).json()
    for answer in (listed["items"][0], shown):
        assert "secret" not in answer
        assert answer["deliveries"] == {"pending": 0, "delivered": 0, "failed": 0}
    async with app[DB].read() as conn:
        stored = (await conn.execute(sa.select(webhooks.c.secret))).scalar_one()
    assert secret not in stored and secret.removeprefix("whsec_") not in stored


async def test_managers_only(
    client: TestClient,
    people: dict[str, Any],  # noqa: F811
    receiver: Receiver,
) -> None:
    made = await subscribe(client, auth(people["manager"]), receiver.url(), "*")
    agent = auth(people["agent"])
    for method, path in (
        ("POST", "/api/v1/webhooks"),
        ("GET", "/api/v1/webhooks"),
        ("GET", f"/api/v1/webhooks/{made['id']}"),
        ("PATCH", f"/api/v1/webhooks/{made['id']}"),
        ("DELETE", f"/api/v1/webhooks/{made['id']}"),
        ("GET", f"/api/v1/webhooks/{made['id']}/deliveries"),
        ("POST", f"/api/v1/webhooks/{made['id']}/test"),
        ("POST", f"/api/v1/webhooks/{made['id']}/deliveries/1/retry"),
    ):
        resp = await client.request(method, path, headers=agent, json={})
        assert resp.status == 403, f"{method} {path}: {resp.status}"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (
            {"url": "http://x.example/", "events": ["message.eaten"]},
            "unknown event 'message.eaten'",
        ),
        ({"url": "http://x.example/", "events": []}, "events"),
        ({"url": "http://x.example/"}, "events"),
        ({"url": "http://x.example/", "events": ["*"], "secret": "mine"}, "unknown field"),
    ],
)
async def test_bad_subscriptions_are_400(
    client: TestClient,
    people: dict[str, Any],  # noqa: F811
    change: dict[str, Any],
    why: str,
) -> None:
    resp = await client.post("/api/v1/webhooks", json=change, headers=auth(people["manager"]))
    assert resp.status == 400 and why in (await resp.json())["detail"]


async def test_change_switch_rotate_and_remove(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    people: dict[str, Any],  # noqa: F811
    receiver: Receiver,
) -> None:
    manager = auth(people["manager"])
    made = await subscribe(client, manager, receiver.url("/old"), "message.received")
    path = f"/api/v1/webhooks/{made['id']}"
    changed = await client.patch(
        path,
        json={"url": receiver.url("/new"), "description": "CRM", "rotate_secret": True},
        headers=manager,
    )
    assert changed.status == 200
    answer = await changed.json()
    assert answer["url"].endswith("/new") and answer["description"] == "CRM"
    assert answer["secret"] != made["secret"]
    await say(client, echo, "m1")
    await eventually(lambda: len(receiver.requests) == 1)
    (seen,) = receiver.requests
    assert seen.path == "/new" and seen.verified(answer["secret"])["type"] == "message.received"

    off = await client.patch(path, json={"enabled": False}, headers=manager)
    assert (await off.json())["enabled"] is False
    await say(client, echo, "m2")
    on = await client.patch(path, json={"enabled": True}, headers=manager)
    assert (await on.json())["enabled"] is True
    await say(client, echo, "m3")
    await eventually(lambda: len(receiver.requests) == 2)
    heard = [r.json["data"]["message"]["external_id"] for r in receiver.requests]
    assert heard == ["m1", "m3"]  # m2 happened while it was off

    bad = await client.patch(path, json={"url": "http://169.254.169.254/"}, headers=manager)
    assert bad.status == 422
    assert (await client.delete(path, headers=manager)).status == 204
    assert (await client.get(path, headers=manager)).status == 404
    assert await count(app, webhook_deliveries) == 0


async def test_test_posts_now_and_answers_what_the_receiver_said(
    client: TestClient,
    people: dict[str, Any],  # noqa: F811
    receiver: Receiver,
) -> None:
    manager = auth(people["manager"])
    made = await subscribe(client, manager, receiver.url(), "conversation.closed")
    tested = await client.post(f"/api/v1/webhooks/{made['id']}/test", headers=manager)
    answer = await tested.json()
    assert tested.status == 200 and answer["status"] == "delivered"
    (seen,) = receiver.requests
    assert seen.verified(made["secret"])["data"] == {"webhook_id": made["id"]}
    assert answer["webhook_message_id"] == seen.id and answer["log"][0]["status"] == 204

    receiver.script = [503]  # a test is tried once: it fails, and is not retried
    again = await (await client.post(f"/api/v1/webhooks/{made['id']}/test", headers=manager)).json()
    assert again["status"] == "failed" and again["last_error"] == "answered 503"
    failed = await deliveries(client, manager, made["id"], status="failed")
    assert [d["id"] for d in failed] == [again["id"]]
    bad = await client.get(
        f"/api/v1/webhooks/{made['id']}/deliveries", params={"status": "lost"}, headers=manager
    )
    assert bad.status == 400
