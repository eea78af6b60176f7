"""What outgoing webhooks hear (bot.workspace.events): each event from where it happens,
written in the same commit, and nothing written for a space whose subscriptions do not
hear it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.keys import DB, DEFAULT_SPACE, INGESTOR, TOPICS
from bot.model import StatusChanged
from bot.storage.tables import contacts, messages, webhook_events
from bot.workspace.events import EVENTS, Topics, emit, hears
from tests.bot.api.test_conversations import auth, open_conversation, people  # noqa: F401
from tests.bot.delivery.test_webhooks import say, subscribe
from tests.broadcasts.helpers import act as broadcast_action
from tests.broadcasts.helpers import create, finished
from tests.conftest import count, eventually
from tests.fakes.echo_channel import EchoChannel
from tests.fakes.webhook_receiver import Receiver, receiving


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as receiver:
        yield receiver


def test_a_subscription_hears_its_events_or_everything() -> None:
    assert hears(["message.received"], "message.received")
    assert not hears(["message.received"], "message.sent")
    assert all(hears(["*"], event) for event in EVENTS)


async def test_nothing_is_written_where_nobody_listens(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    people: dict[str, Any],  # noqa: F811
    receiver: Receiver,
) -> None:
    await say(client, echo, "m1")
    await eventually(lambda: echo.sent)
    async with app[DB].write() as conn:
        assert not await emit(conn, app[DEFAULT_SPACE], "conversation.closed", {"x": 1})
    assert await count(app, webhook_events) == 0
    assert not app[TOPICS].anyone_wants("message.received")

    await subscribe(client, auth(people["manager"]), receiver.url(), "conversation.closed")
    topics = Topics(app[DB])  # what another process reads
    await topics.refresh()
    assert topics.wants(app[DEFAULT_SPACE], "conversation.closed")
    assert not topics.wants(app[DEFAULT_SPACE], "message.received")
    assert not topics.wants(app[DEFAULT_SPACE] + 1, "conversation.closed")
    async with app[DB].write() as conn:
        assert not await emit(conn, app[DEFAULT_SPACE], "contact.updated", {"x": 1})
        assert await emit(conn, app[DEFAULT_SPACE], "conversation.closed", {"x": 1})


async def test_what_people_do_to_conversations_and_contacts_is_heard(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    people: dict[str, Any],  # noqa: F811
    receiver: Receiver,
) -> None:
    manager = auth(people["manager"])
    hook = await subscribe(client, manager, receiver.url(), "*")
    conversation = await open_conversation(client, app, echo)  # "talk to a human"
    await say(client, echo, "v1", who="u2")
    async with app[DB].read() as conn:
        contact, other = (
            await conn.execute(sa.select(contacts.c.id).order_by(contacts.c.id))
        ).scalars()
    steps = [
        ("POST", f"/api/v1/conversations/{conversation}/assign", {"user_id": people["admin_id"]}),
        ("POST", f"/api/v1/contacts/{contact}/tags", {"tags": ["vip"]}),
        ("POST", "/api/v1/fields", {"key": "plan", "type": "text"}),
        ("PUT", f"/api/v1/contacts/{contact}/fields/plan", {"value": "pro"}),
        ("POST", f"/api/v1/contacts/{contact}/merge", {"other_id": other}),
        ("POST", f"/api/v1/conversations/{conversation}/close", None),
    ]
    for method, path, sent in steps:
        resp = await client.request(method, path, json=sent, headers=manager)
        assert resp.status < 300, f"{method} {path}: {await resp.text()}"

    def heard(event_type: str) -> list[dict[str, Any]]:
        return [r.verified(hook["secret"])["data"] for r in receiver.of_type(event_type)]

    await eventually(lambda: heard("conversation.closed"), timeout=10)
    assert heard("conversation.handed_over")[0]["conversation_id"] == conversation
    assert heard("conversation.assigned") == [
        {
            "contact_id": contact,
            "conversation_id": conversation,
            "user_id": people["admin_id"],
            "team_id": None,
        }
    ]
    updates = heard("contact.updated")
    assert {"change": "tag_added", "tag": "vip", "contact_id": contact} in [
        {k: u[k] for k in ("change", "tag", "contact_id")} for u in updates if "tag" in u
    ]
    assert any(u["change"] == "field_changed" and u["field"] == "plan" for u in updates)
    (merged,) = heard("contact.merged")
    assert merged["contact_id"] == contact and merged["merged_contact_id"] == other
    assert heard("conversation.closed")[0]["conversation_id"] == conversation


async def test_receipts_are_heard_as_message_status(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    people: dict[str, Any],  # noqa: F811
    receiver: Receiver,
) -> None:
    hook = await subscribe(client, auth(people["manager"]), receiver.url(), "message.status")
    await say(client, echo, "m1")
    await eventually(lambda: echo.sent)
    reply = echo.sent[0].message_id
    receipt = StatusChanged(external_id=f"echo-out-{reply}", status="delivered")
    # the sender records the platform's id just after the send returns
    await eventually(lambda: count(app, messages, messages.c.external_id == receipt.external_id))
    stored = await app[INGESTOR].store(echo.id, app[DEFAULT_SPACE], [receipt])
    assert stored.updated == 1 and stored.events == 1
    await eventually(lambda: receiver.requests)
    (seen,) = receiver.requests
    message = seen.verified(hook["secret"])["data"]["message"]
    assert message["id"] == reply and message["status"] == "delivered"
    # the same receipt again moves nothing, and tells nothing
    again = await app[INGESTOR].store(echo.id, app[DEFAULT_SPACE], [receipt])
    assert again.updated == 0 and again.events == 0


async def test_a_failed_send_is_heard_as_message_status_failed(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    people: dict[str, Any],  # noqa: F811
    receiver: Receiver,
) -> None:
    from bot.errors import PermanentFailure

    await subscribe(client, auth(people["manager"]), receiver.url(), "message.status")
    echo.failures = [PermanentFailure("chat not found")]
    await say(client, echo, "m1")
    await eventually(lambda: receiver.requests)
    message = receiver.requests[0].json["data"]["message"]
    assert message["status"] == "failed" and message["error"] == "chat not found"


async def test_a_broadcast_s_end_is_heard(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    people: dict[str, Any],  # noqa: F811
    receiver: Receiver,
) -> None:
    await subscribe(client, auth(people["manager"]), receiver.url(), "broadcast.completed")
    for who in ("ana", "ben"):
        await say(client, echo, f"m-{who}", who=who)
    broadcast_id = await create(app, echo.id)
    await broadcast_action(app, broadcast_id, "start")
    await finished(app, broadcast_id)
    await eventually(lambda: receiver.requests)
    (seen,) = receiver.requests
    assert seen.json["data"]["broadcast"]["id"] == broadcast_id
    assert seen.json["data"]["broadcast"]["recipients"] == {"sent": 2}
    assert seen.json["data"]["broadcast"]["channel_id"] == echo.id
