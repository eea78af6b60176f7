"""Every built-in field of the views' filter, against data made the way contacts make it:
messages through the webhooks, handovers, closes and API edits (issue #14)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.clock import now
from bot.keys import DEFAULT_SPACE
from bot.storage.tables import work_items
from tests.bot.pipeline.test_webhooks import body, post
from tests.conftest import add_channel, count, eventually
from tests.fakes.echo_channel import EchoChannel
from tests.handlers.test_assignment import Api, api, contact_of, latest, team  # noqa: F401
from tests.handlers.test_handover import agent


async def write(client: TestClient, app: Application, channel: str, who: str, text: str) -> None:
    """`who` (named after themselves) writes on `channel`; returns once it is handled."""
    item = {"id": f"{who}-{now().timestamp()}", "from": who, "name": who.title(), "text": text}
    assert (await post(client, channel, body(item))).status == 200

    async def handled() -> bool:
        return await count(app, work_items) == 0

    await eventually(handled)


async def shown_by_a_view(api: Api, condition: dict[str, Any]) -> list[str]:  # noqa: F811
    """The names a saved view with this one condition lists, checked against its count."""
    view = await api.ok("POST", "/views", {"name": str(condition), "filter": {"all": [condition]}})
    status, page = await api.call("GET", f"/views/{view['id']}/contacts", count="1")
    assert status == 200, page
    assert page["count"] == len(page["items"])
    return sorted(c["name"] for c in page["items"])


async def test_each_built_in_field_matches_real_contacts(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    api: Api,  # noqa: F811
) -> None:
    other = await add_channel(app, "echo", app[DEFAULT_SPACE])
    bea = await agent(app, "Bea", "online")
    sales = await team(api, "Sales", bea)
    await write(client, app, echo.id, "ana", "hello")
    await write(client, app, other, "bruno", "hello")
    await asyncio.sleep(0.01)
    between = now().isoformat()
    await asyncio.sleep(0.01)
    await write(client, app, echo.id, "carla", "hello")
    ana = (await contact_of(app, "ana")).id
    await api.ok(
        "PATCH",
        f"/contacts/{ana}",
        {
            "name": "Ana Lima",
            "phone": "+351911222333",
            "email": "ana@x.pt",
            "language": "pt",
            "subscribed": False,
        },
    )
    await api.ok("POST", f"/contacts/{ana}/tags", {"tags": ["vip"]})
    await api.ok("POST", "/fields", {"key": "plan", "type": "choice", "options": ["free", "pro"]})
    await api.ok("PUT", f"/contacts/{ana}/fields/plan", {"value": "pro"})
    await write(client, app, echo.id, "ana", "human")  # Bea takes it
    await api.ok("POST", f"/contacts/{ana}/assign", {"team_id": sales})
    await api.ok("POST", f"/conversations/{(await latest(app, 'bruno')).id}/close")
    await asyncio.sleep(0.01)
    later = now().isoformat()

    everyone = ["Ana Lima", "Bruno", "Carla"]
    expected = [
        ({"field": "name", "op": "contains", "value": "Lima"}, ["Ana Lima"]),
        ({"field": "phone", "op": "starts_with", "value": "+351"}, ["Ana Lima"]),
        ({"field": "email", "op": "is", "value": "ana@x.pt"}, ["Ana Lima"]),
        ({"field": "language", "op": "is", "value": "pt"}, ["Ana Lima"]),
        ({"field": "status", "op": "is", "value": "closed"}, ["Bruno"]),
        ({"field": "status", "op": "is", "value": "open"}, ["Ana Lima", "Carla"]),
        ({"field": "channel", "op": "is", "value": other}, ["Bruno"]),
        ({"field": "channel", "op": "is_not", "value": other}, ["Ana Lima", "Carla"]),
        ({"field": "channel", "op": "is", "value": "echo"}, everyone),
        ({"field": "assignee", "op": "is", "value": bea}, ["Ana Lima"]),
        ({"field": "assignee", "op": "is_not_set"}, ["Bruno", "Carla"]),
        ({"field": "team", "op": "is", "value": sales}, ["Ana Lima"]),
        ({"field": "team", "op": "is_not", "value": sales}, ["Bruno", "Carla"]),
        ({"field": "created_at", "op": "after", "value": between}, ["Carla"]),
        ({"field": "created_at", "op": "before", "value": between}, ["Ana Lima", "Bruno"]),
        ({"field": "last_message_at", "op": "after", "value": between}, ["Ana Lima", "Carla"]),
        ({"field": "last_message_at", "op": "within_last", "value": "1h"}, everyone),
        ({"field": "last_message_at", "op": "after", "value": later}, []),
        ({"field": "unsubscribed_at", "op": "is_set"}, ["Ana Lima"]),
        ({"field": "unsubscribed_at", "op": "within_last", "value": "1h"}, ["Ana Lima"]),
        ({"field": "unsubscribed_at", "op": "is_not_set"}, ["Bruno", "Carla"]),
        ({"field": "tags", "op": "has_tag", "value": "vip"}, ["Ana Lima"]),
        ({"field": "tags", "op": "has_no_tag", "value": "vip"}, ["Bruno", "Carla"]),
        ({"field": "fields.plan", "op": "is", "value": "pro"}, ["Ana Lima"]),
        ({"field": "fields.plan", "op": "is_not_set"}, ["Bruno", "Carla"]),
    ]
    for condition, names in expected:
        assert await shown_by_a_view(api, condition) == names, condition
