# ruff: noqa: F811 - the Meta fixtures are imported by name, then requested as arguments
"""Broadcasts through the real WhatsApp and Messenger channels against the fake Graph API:
the 24-hour window, templates, message tags, and the statuses Meta reports afterwards."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from bot.clock import now
from bot.keys import DB
from bot.storage.tables import conversations, identities, messages
from broadcasts.planning import OUTSIDE_WINDOW
from broadcasts.store import counts
from tests.broadcasts.helpers import act, create, finished, reasons
from tests.channels.conftest import graph, meta_channel, meta_hub, signed  # noqa: F401
from tests.channels.test_whatsapp import change, wa
from tests.conftest import eventually
from tests.fakes.graph import FakeGraph

PAGE_ID, NUMBER_ID = "1001", "3003"


async def write_in(hub: TestClient, channel_id: str, body: dict[str, Any], mid: str) -> None:
    raw, headers = signed(body)
    assert (await hub.post(f"/webhooks/{channel_id}", data=raw, headers=headers)).status == 200
    app = hub.server.app

    async def stored() -> bool:
        async with app[DB].read() as conn:
            found = await conn.execute(
                sa.select(messages.c.id).where(messages.c.external_id == mid)
            )
            return found.first() is not None

    await eventually(stored)


async def age(hub: TestClient, external_id: str, hours: float) -> int:
    """Make the contact behind `external_id` have last written `hours` ago; their id."""
    app = hub.server.app
    async with app[DB].write() as conn:
        identity_id, contact_id = (
            await conn.execute(
                sa.select(identities.c.id, identities.c.contact_id).where(
                    identities.c.external_id == external_id
                )
            )
        ).one()
        await conn.execute(
            messages.update()
            .where(messages.c.direction == "in")
            .where(
                messages.c.conversation_id.in_(
                    sa.select(conversations.c.id).where(conversations.c.identity_id == identity_id)
                )
            )
            .values(created_at=now() - timedelta(hours=hours))
        )
    return int(contact_id)


def whatsapp_contact(wa_id: str, mid: str, name: str) -> dict[str, Any]:
    body = change([{**wa(mid, "text", text={"body": "hi"}), "from": wa_id}])
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id}]
    return body


async def test_whatsapp_text_skips_the_window_and_a_template_reaches_everyone(
    meta_hub: TestClient, graph: FakeGraph
) -> None:
    app = meta_hub.server.app
    channel = await meta_channel(
        meta_hub, "whatsapp", phone_number_id=NUMBER_ID, access_token="WA-TOKEN"
    )
    await write_in(meta_hub, channel.id, whatsapp_contact("351900000001", "w1", "Ana Lima"), "w1")
    await write_in(meta_hub, channel.id, whatsapp_contact("351900000002", "w2", "Bruno"), "w2")
    await eventually(lambda: len(graph.sent) >= 2)  # the bot greeted both
    old = await age(meta_hub, "351900000002", 25)
    graph.sent.clear()

    text = await create(meta_hub.server.app, channel.id, name="text")
    await act(app, text, "start")
    assert (await finished(app, text))["sent"] == 1
    assert [body["to"] for _, body in graph.sent] == ["351900000001"]
    assert (await reasons(app, text))[old] == OUTSIDE_WINDOW["whatsapp"]

    graph.sent.clear()
    template = await create(
        app,
        channel.id,
        name="template",
        message={
            "template": {
                "name": "december_offer",
                "language": "pt_PT",
                "params": ["{{contact.first_name}}", "20%"],
            }
        },
    )
    await act(app, template, "start")
    assert (await finished(app, template))["sent"] == 2
    bodies = {body["to"]: body for _, body in graph.sent}
    assert set(bodies) == {"351900000001", "351900000002"}
    sent = bodies["351900000002"]
    assert sent["type"] == "template"
    assert sent["template"]["name"] == "december_offer"
    assert sent["template"]["language"] == {"code": "pt_PT"}
    params = sent["template"]["components"][0]["parameters"]
    assert [p["text"] for p in params] == ["Bruno", "20%"]

    # Meta reports Ana's delivered and read, Bruno's failed after all
    async with app[DB].read() as conn:
        ids = dict(
            (
                await conn.execute(
                    sa.select(messages.c.conversation_id, messages.c.external_id)
                    .where(messages.c.sender_type == "broadcast")
                    .where(messages.c.sender_id == str(template))
                )
            ).all()
        )
    assert len(ids) == 2 and all(ids.values())
    ana_out, bruno_out = sorted(ids.values())
    statuses = [
        {"id": ana_out, "status": "delivered", "timestamp": "1", "recipient_id": "351900000001"},
        {"id": ana_out, "status": "read", "timestamp": "2", "recipient_id": "351900000001"},
        {
            "id": bruno_out,
            "status": "failed",
            "timestamp": "2",
            "recipient_id": "351900000002",
            "errors": [{"code": 131026, "title": "Message undeliverable"}],
        },
    ]
    raw, headers = signed(change(statuses=statuses))
    assert (await meta_hub.post(f"/webhooks/{channel.id}", data=raw, headers=headers)).status == 200
    report = await eventually(lambda: _report_shows(app, template, "read", 1))
    assert report["failed"] == 1 and report["sent"] == 0


async def _report_shows(app: Any, broadcast_id: int, status: str, n: int) -> Any:
    async with app[DB].read() as conn:
        found = await counts(conn, broadcast_id)
    return found if found[status] == n else None


async def test_messenger_reaches_an_old_contact_only_with_an_allowed_tag(
    meta_hub: TestClient, graph: FakeGraph
) -> None:
    app = meta_hub.server.app
    channel = await meta_channel(meta_hub, "messenger", page_id=PAGE_ID, page_token="PAGE-TOKEN")
    body = {
        "object": "page",
        "entry": [
            {
                "id": PAGE_ID,
                "time": 1,
                "messaging": [
                    {
                        "sender": {"id": "PSID-1"},
                        "recipient": {"id": PAGE_ID},
                        "timestamp": 1,
                        "message": {"mid": "m1", "text": "hi"},
                    }
                ],
            }
        ],
    }
    await write_in(meta_hub, channel.id, body, "m1")
    await eventually(lambda: graph.sent)
    old = await age(meta_hub, "PSID-1", 30)
    graph.sent.clear()

    untagged = await create(app, channel.id, name="untagged")
    await act(app, untagged, "start")
    await finished(app, untagged)
    assert (await reasons(app, untagged))[old] == OUTSIDE_WINDOW["messenger"]
    assert graph.sent == []

    tagged = await create(
        app,
        channel.id,
        name="tagged",
        message={"text": "Your order shipped", "tag": "POST_PURCHASE_UPDATE"},
    )
    await act(app, tagged, "start")
    assert (await finished(app, tagged))["sent"] == 1
    ((_, sent),) = graph.sent
    assert sent["messaging_type"] == "MESSAGE_TAG" and sent["tag"] == "POST_PURCHASE_UPDATE"
    assert sent["message"]["text"] == "Your order shipped"
