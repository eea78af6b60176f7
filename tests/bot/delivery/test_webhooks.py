"""The webhook relay (bot.delivery.webhooks): every delivery signed (verified with the
`standardwebhooks` package), retried with the same webhook-id, in order per conversation,
every attempt logged, a refusal not retried, a subscription failing for a day disabled,
and a receiver that is down slows nobody."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.api.auth import create_token
from bot.clock import now
from bot.keys import DB, DEFAULT_SPACE, WEBHOOKS
from bot.storage.tables import messages, webhook_deliveries, webhooks
from tests.bot.pipeline.test_webhooks import body, post
from tests.conftest import count, eventually
from tests.fakes.echo_channel import EchoChannel
from tests.fakes.webhook_receiver import Receiver, receiving


@pytest.fixture
async def manager(app: Application) -> dict[str, str]:
    async with app[DB].write() as conn:
        token = await create_token(conn, app[DEFAULT_SPACE], None, "m", "manager")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as receiver:
        yield receiver


async def subscribe(
    client: TestClient, manager: dict[str, str], url: str, *events: str
) -> dict[str, Any]:
    made = await client.post(
        "/api/v1/webhooks", json={"url": url, "events": list(events) or ["*"]}, headers=manager
    )
    assert made.status == 201, await made.text()
    return await made.json()


async def say(client: TestClient, echo: EchoChannel, message_id: str, who: str = "u1") -> None:
    resp = await post(client, echo.id, body({"id": message_id, "from": who, "text": "hello"}))
    assert resp.status == 200


async def deliveries(
    client: TestClient, manager: dict[str, str], webhook_id: int, **query: str
) -> list[dict[str, Any]]:
    resp = await client.get(
        f"/api/v1/webhooks/{webhook_id}/deliveries", params=query, headers=manager
    )
    assert resp.status == 200
    return (await resp.json())["items"]


async def test_every_delivery_is_signed_and_tells_what_happened(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    manager: dict[str, str],
    receiver: Receiver,
) -> None:
    everything = await subscribe(client, manager, receiver.url("/all"))
    closed_only = await subscribe(client, manager, receiver.url("/closed"), "conversation.closed")
    await say(client, echo, "m1")
    await eventually(lambda: len(echo.sent) >= 1)
    await eventually(lambda: len(receiver.of_type("message.sent")) == len(echo.sent), timeout=10)
    assert everything["secret"].startswith("whsec_")
    assert {r.path for r in receiver.requests} == {"/all"}  # /closed hears no message
    payloads = [r.verified(everything["secret"]) for r in receiver.requests]
    assert not [r for r in receiver.requests if _signed_by(r, closed_only["secret"])]
    kinds = [p["type"] for p in payloads]
    assert kinds[:3] == ["contact.created", "conversation.opened", "message.received"]
    async with app[DB].read() as conn:
        inbound = (
            await conn.execute(sa.select(messages).where(messages.c.direction == "in"))
        ).one()
    received = payloads[2]["data"]["message"]
    assert received["id"] == inbound.id and received["external_id"] == "m1"
    assert received["conversation_id"] == inbound.conversation_id
    assert received["parts"] == [{"type": "text", "text": "hello"}]
    assert payloads[0]["data"]["contact"]["id"] == received["contact_id"]
    sent = [p["data"]["message"] for p in payloads if p["type"] == "message.sent"]
    assert [m["external_id"] for m in sent] == [f"echo-out-{o.message_id}" for o in echo.sent]
    assert all(p["timestamp"].endswith("+00:00") for p in payloads)
    assert len({r.id for r in receiver.requests}) == len(receiver.requests)
    assert all(r.headers["User-Agent"] == "ChanCenter-Webhooks/1" for r in receiver.requests)


def _signed_by(seen: Any, secret: str) -> bool:
    try:
        seen.verified(secret)
    except Exception:
        return False
    return True


async def test_a_500_is_retried_with_the_same_webhook_id_when_retry_after_says(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    manager: dict[str, str],
    receiver: Receiver,
) -> None:
    hook = await subscribe(client, manager, receiver.url(), "message.received")

    async def down(request: web.Request) -> web.Response:
        return web.Response(status=500, text="database down", headers={"Retry-After": "1"})

    receiver.script = [down]
    await say(client, echo, "m1")
    await eventually(lambda: len(receiver.requests) == 2, timeout=10)
    first, again = receiver.requests
    assert first.id == again.id and first.body == again.body
    assert again.verified(hook["secret"])["data"]["message"]["external_id"] == "m1"
    assert int(again.headers["webhook-timestamp"]) - int(first.headers["webhook-timestamp"]) >= 1
    await eventually(lambda: _status_is(client, manager, hook["id"], "delivered"))
    (delivery,) = await deliveries(client, manager, hook["id"])
    assert delivery["attempts"] == 2 and delivery["webhook_message_id"] == first.id
    failed, took = delivery["log"]
    assert failed["status"] == 500 and failed["response"] == "database down"
    assert took["status"] == 204 and took["ms"] >= 0 and took["error"] is None


async def _attempted(client: TestClient, manager: dict[str, str], webhook_id: int) -> bool:
    found = await deliveries(client, manager, webhook_id)
    return bool(found) and found[0]["attempts"] == 1


async def _status_is(
    client: TestClient, manager: dict[str, str], webhook_id: int, status: str
) -> bool:
    found = await deliveries(client, manager, webhook_id)
    return bool(found) and all(d["status"] == status for d in found)


async def test_a_conversation_s_deliveries_keep_their_order_across_a_retry(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    manager: dict[str, str],
    receiver: Receiver,
) -> None:
    await subscribe(client, manager, receiver.url(), "message.received")

    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503, headers={"Retry-After": "2"})

    receiver.script = [busy]
    await say(client, echo, "m1")
    await eventually(lambda: len(receiver.requests) == 1)
    await say(client, echo, "m2")  # waits behind m1
    await say(client, echo, "x1", who="u2")  # another conversation does not wait
    await eventually(lambda: len(receiver.requests) == 4, timeout=10)
    order = [r.json["data"]["message"]["external_id"] for r in receiver.requests]
    assert order == ["m1", "x1", "m1", "m2"]


async def test_a_refusal_is_not_retried_is_logged_and_can_be_replayed(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    manager: dict[str, str],
    receiver: Receiver,
) -> None:
    hook = await subscribe(client, manager, receiver.url(), "message.received")

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/elsewhere"})

    receiver.script = [410, redirect]
    await say(client, echo, "m1")
    await say(client, echo, "m2")

    async def both_failed() -> bool:
        return len(await deliveries(client, manager, hook["id"], status="failed")) == 2

    await eventually(both_failed)
    assert [r.path for r in receiver.requests] == ["/hook", "/hook"]  # no redirect followed
    gone, moved = reversed(await deliveries(client, manager, hook["id"], status="failed"))
    assert gone["last_error"] == "answered 410" and gone["attempts"] == 1
    assert gone["log"][0]["response"] == "answered 410"
    assert moved["last_error"] == "answered 302"
    assert await deliveries(client, manager, hook["id"], status="delivered") == []

    replay = await client.post(
        f"/api/v1/webhooks/{hook['id']}/deliveries/{gone['id']}/retry", headers=manager
    )
    assert replay.status == 200 and (await replay.json())["status"] == "pending"
    await eventually(lambda: len(receiver.requests) == 3)
    assert receiver.requests[2].id == gone["webhook_message_id"]  # the same webhook-id


async def test_only_the_first_64_kib_of_an_answer_are_read(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    manager: dict[str, str],
    receiver: Receiver,
) -> None:
    hook = await subscribe(client, manager, receiver.url(), "message.received")

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=200)
        await resp.prepare(request)
        while True:  # far more than 64 KiB, and it never ends
            await resp.write(b"x" * 65536)
            await asyncio.sleep(0.01)

    receiver.script = [endless]
    started = time.monotonic()
    await say(client, echo, "m1")
    await eventually(lambda: _status_is(client, manager, hook["id"], "delivered"))
    assert time.monotonic() - started < 5  # not the 10 s timeout
    (delivery,) = await deliveries(client, manager, hook["id"])
    assert delivery["log"][0]["response"] == "x" * 500


async def test_a_subscription_failing_for_a_day_is_disabled_and_says_why(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    manager: dict[str, str],
    receiver: Receiver,
) -> None:
    hook = await subscribe(client, manager, receiver.url(), "message.received")
    receiver.script = [500]
    await say(client, echo, "m1")
    await eventually(lambda: _attempted(client, manager, hook["id"]))
    shown = await (await client.get(f"/api/v1/webhooks/{hook['id']}", headers=manager)).json()
    assert shown["enabled"] and shown["failing_since"] is not None
    async with app[DB].write() as conn:  # as if it had failed since yesterday
        await conn.execute(
            webhooks.update().values(failing_since=now() - timedelta(days=1, minutes=1))
        )
        await conn.execute(webhook_deliveries.update().values(next_attempt_at=now()))
    receiver.script = [500]
    app[WEBHOOKS].notify()
    await eventually(lambda: _status_is(client, manager, hook["id"], "failed"))
    shown = await (await client.get(f"/api/v1/webhooks/{hook['id']}", headers=manager)).json()
    assert not shown["enabled"]
    assert "no delivery succeeded since" in shown["disabled_reason"]
    assert "answered 500" in shown["disabled_reason"]
    await say(client, echo, "m2")
    await asyncio.sleep(1.5)
    assert len(receiver.requests) == 2  # a disabled subscription hears nothing
    assert await count(app, webhook_deliveries) == 1

    on = await client.patch(
        f"/api/v1/webhooks/{hook['id']}", json={"enabled": True}, headers=manager
    )
    assert (await on.json())["disabled_reason"] is None
    await say(client, echo, "m3")
    await eventually(lambda: len(receiver.requests) == 3)


async def test_a_delivery_not_taken_within_a_day_fails(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    manager: dict[str, str],
    receiver: Receiver,
) -> None:
    hook = await subscribe(client, manager, receiver.url(), "message.received")
    receiver.script = [500, 500]
    await say(client, echo, "m1")
    await eventually(lambda: _attempted(client, manager, hook["id"]))
    async with app[DB].write() as conn:  # a day has passed
        await conn.execute(
            webhook_deliveries.update().values(next_attempt_at=now(), give_up_at=now())
        )
    app[WEBHOOKS].notify()
    await eventually(lambda: _status_is(client, manager, hook["id"], "failed"))
    (delivery,) = await deliveries(client, manager, hook["id"])
    assert delivery["attempts"] == 2 and delivery["last_error"] == "answered 500"


async def test_a_receiver_that_hangs_slows_no_reply(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    manager: dict[str, str],
    receiver: Receiver,
) -> None:
    await subscribe(client, manager, receiver.url(), "*")
    hung = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await hung.wait()
        return web.Response(status=204)

    receiver.script = [hang] * 20
    started = time.monotonic()
    await say(client, echo, "m1")
    await eventually(lambda: len(echo.sent) >= 1, timeout=3)
    await say(client, echo, "m2")
    await eventually(lambda: len(echo.sent) >= 2, timeout=3)
    assert time.monotonic() - started < 3
    await eventually(lambda: bool(receiver.requests))
    assert not hung.is_set()  # the receiver still holds them
    hung.set()
