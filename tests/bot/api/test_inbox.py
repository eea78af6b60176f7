"""The inbox through the API: views filter conversations, one conversation reads back,
the handover queue lists, a misspelt parameter is refused."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.storage.tables import work_items
from tests.bot.api.test_conversations import auth, people  # noqa: F401
from tests.bot.pipeline.test_webhooks import body, post
from tests.conftest import count, eventually
from tests.fakes.echo_channel import EchoChannel


async def _two_contacts(client: TestClient, app: Application, echo: EchoChannel) -> None:
    await post(client, echo.id, body({"id": "1", "from": "ana", "text": "hi", "name": "Ana"}))
    await post(client, echo.id, body({"id": "2", "from": "bo", "text": "talk to a human"}))

    async def handled() -> bool:
        return await count(app, work_items) == 0

    await eventually(handled)


async def test_a_view_filters_the_inbox_and_a_conversation_reads_back(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    people: dict[str, Any],  # noqa: F811
) -> None:
    await _two_contacts(client, app, echo)
    headers = auth(people["manager"])
    view = await (
        await client.post(
            "/api/v1/views",
            json={
                "name": "Ana",
                "filter": {"all": [{"field": "name", "op": "is", "value": "Ana"}]},
            },
            headers=headers,
        )
    ).json()
    everyone = (await (await client.get("/api/v1/conversations", headers=headers)).json())["items"]
    assert len(everyone) == 2
    viewed = await (
        await client.get("/api/v1/conversations", params={"view_id": view["id"]}, headers=headers)
    ).json()
    assert [c["contact"]["name"] for c in viewed["items"]] == ["Ana"]
    missing = await client.get("/api/v1/conversations", params={"view_id": "999"}, headers=headers)
    assert missing.status == 404

    waiting = await (
        await client.get("/api/v1/conversations", params={"handler": "waiting"}, headers=headers)
    ).json()
    assert [c["handler"] for c in waiting["items"]] == ["waiting"]
    one = await client.get(f"/api/v1/conversations/{waiting['items'][0]['id']}", headers=headers)
    assert one.status == 200
    shown = await one.json()
    assert shown == waiting["items"][0]
    assert {"assignee_id", "team_id", "closed_at"} <= set(shown)
    assert (await client.get("/api/v1/conversations/999", headers=headers)).status == 404


async def test_a_misspelt_query_parameter_is_named_not_ignored(
    client: TestClient,
    people: dict[str, Any],  # noqa: F811
) -> None:
    resp = await client.get(
        "/api/v1/conversations", params={"view": "3"}, headers=auth(people["agent"])
    )
    assert resp.status == 400
    assert "'view'" in (await resp.json())["detail"]
