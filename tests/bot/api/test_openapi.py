"""The REST API slice: bearer tokens, space scoping, pagination, the spec."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.api.auth import create_token
from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import api_tokens, work_items
from bot.workspace.bootstrap import create_space
from tests.bot.pipeline.test_webhooks import body, post
from tests.conftest import add_channel, count, eventually
from tests.fakes.echo_channel import EchoChannel


async def token_for(app: Application, space_id: int) -> str:
    async with app[DB].write() as conn:
        return await create_token(conn, space_id, None, "test", "admin")


@pytest.fixture
async def token(app: Application) -> str:
    return await token_for(app, app[DEFAULT_SPACE])


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def conversation_with_messages(client: TestClient, app: Application, echo: EchoChannel):
    await post(client, echo.id, body({"id": "1", "from": "u1", "name": "Ana", "text": "pricing"}))
    await eventually(lambda: _drained(app))


async def _drained(app: Application) -> bool:
    return await count(app, work_items) == 0


async def test_requests_without_a_valid_token_are_401(client: TestClient, token: str) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, auth("cc_wrong")):
        resp = await client.get("/api/v1/conversations", headers=headers)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        assert (await resp.json())["detail"]


async def test_tokens_are_stored_hashed(app: Application, token: str) -> None:
    async with app[DB].read() as conn:
        stored = (await conn.execute(sa.select(api_tokens.c.token_hash))).scalars().all()
    assert token not in stored and len(stored[0]) == 64


async def test_list_conversations_messages_and_contact(
    client: TestClient, app: Application, echo: EchoChannel, token: str
) -> None:
    await conversation_with_messages(client, app, echo)
    convs = await (await client.get("/api/v1/conversations", headers=auth(token))).json()
    (conv,) = convs["items"]
    assert conv["contact"]["name"] == "Ana" and conv["handler"] == "bot"
    assert conv["status"] == "open" and conv["channel_id"] == echo.id

    msgs = await (
        await client.get(f"/api/v1/conversations/{conv['id']}/messages", headers=auth(token))
    ).json()
    assert [m["direction"] for m in msgs["items"]] == ["in", "out", "out"]
    assert msgs["items"][0]["parts"] == [{"type": "text", "text": "pricing"}]
    assert msgs["items"][2]["reply_to_id"] == msgs["items"][0]["id"]

    page = await (
        await client.get(
            f"/api/v1/conversations/{conv['id']}/messages?limit=1&after={msgs['items'][0]['id']}",
            headers=auth(token),
        )
    ).json()
    assert [m["id"] for m in page["items"]] == [msgs["items"][1]["id"]]

    contact = await (
        await client.get(f"/api/v1/contacts/{conv['contact']['id']}", headers=auth(token))
    ).json()
    assert contact["identities"] == [{"channel_id": echo.id, "external_id": "u1"}]


async def test_another_spaces_token_sees_nothing(
    client: TestClient, app: Application, echo: EchoChannel, token: str
) -> None:
    await conversation_with_messages(client, app, echo)
    async with app[DB].write() as conn:
        other = await create_space(conn, "Other", "Other", default=False, webchat=False)
    other_token = await token_for(app, other.space_id)
    await add_channel(app, "echo", other.space_id)

    listed = await (await client.get("/api/v1/conversations", headers=auth(other_token))).json()
    assert listed["items"] == []
    mine = await (await client.get("/api/v1/conversations", headers=auth(token))).json()
    conv = mine["items"][0]
    for path in (
        f"/api/v1/conversations/{conv['id']}/messages",
        f"/api/v1/contacts/{conv['contact']['id']}",
    ):
        resp = await client.get(path, headers=auth(other_token))
        assert resp.status == 404, path


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=201", "limit=abc", "before=x", "status=pending"]
)
async def test_bad_query_parameters_are_400(client: TestClient, token: str, query: str) -> None:
    resp = await client.get(f"/api/v1/conversations?{query}", headers=auth(token))
    assert resp.status == 400
    assert (await resp.json())["detail"]


async def test_openapi_spec_lists_the_paths_and_part_schemas(client: TestClient) -> None:
    spec = await (await client.get("/api/v1/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    served = {
        (r.resource.canonical, r.method.lower())
        for r in client.server.app.router.routes()
        if r.resource is not None
        and r.resource.canonical.startswith("/api/v1/")
        and r.method != "HEAD"
        and r.resource.canonical not in ("/api/v1/openapi.json", "/api/v1/docs")
    }
    assert served == documented
    schemas = set(spec["components"]["schemas"])
    assert {"TextPart", "MediaPart", "QuickRepliesPart", "NewView", "Group", "Condition"} <= schemas
    # every reference resolves
    text = json.dumps(spec)
    for ref in set(re.findall(r'"#/components/schemas/([^"]+)"', text)):
        assert ref in schemas, ref


async def test_docs_page_lists_every_operation(client: TestClient) -> None:
    page = await (await client.get("/api/v1/docs")).text()
    spec = await (await client.get("/api/v1/openapi.json")).json()
    assert page.count("<tr><td><code>") == sum(len(ops) for ops in spec["paths"].values())
    assert "/api/v1/views/{view_id}/contacts" in page
