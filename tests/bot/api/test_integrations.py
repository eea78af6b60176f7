"""A space's own Dialogflow agent through the API: it answers at once, errors reach admins once.

Covers `bot.workspace.crypto`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from aiohttp.test_utils import TestClient

from bot.api.auth import create_token
from bot.app import create_app
from bot.keys import CHANNELS, DB, DEFAULT_SPACE
from bot.plugins import Plugins
from bot.settings import Settings
from handlers.bot import BOT_ERROR_TEXT
from tests.conftest import add_channel, closed_within
from tests.fakes.dialogflow import FakeDialogflow, serve
from tests.handlers.test_handover import say


@pytest.fixture
async def dialogflow() -> AsyncIterator[FakeDialogflow]:
    async with serve() as fake:
        yield fake


@pytest.fixture
async def hub(
    aiohttp_client: Any, settings: Settings, plugins: Plugins, dialogflow: FakeDialogflow
) -> AsyncIterator[TestClient]:
    # the hub's default bot is the built-in one; Dialogflow is only where a space asks
    app = create_app(
        settings.model_copy(update={"dialogflow_endpoint": f"127.0.0.1:{dialogflow.port}"}),
        plugins,
    )
    client = await aiohttp_client(app)
    yield client
    await closed_within(client, 15)


async def manager(hub: TestClient) -> dict[str, str]:
    app = hub.server.app
    async with app[DB].write() as conn:
        token = await create_token(conn, app[DEFAULT_SPACE], None, "m", "manager")
    return {"Authorization": f"Bearer {token}"}


async def test_a_space_switches_to_its_own_agent_and_back(
    hub: TestClient, dialogflow: FakeDialogflow
) -> None:
    app, headers = hub.server.app, await manager(hub)
    echo = await app[CHANNELS].get(await add_channel(app, "echo"))
    assert (await say(hub, app, echo, "pricing"))[-1].startswith("Starter is free")

    put = await hub.put(
        "/api/v1/integrations/dialogflow",
        json={"project": "space-agent", "language": "en", "environment": "live"},
        headers=headers,
    )
    assert put.status == 200, await put.text()
    assert await say(hub, app, echo, "pricing") == ["Plans start at 10 EUR.", "Anything else?"]
    assert dialogflow.requests[-1].session.startswith(
        "projects/space-agent/agent/environments/live/users/-/sessions/conversation-"
    )
    listed = await (await hub.get("/api/v1/integrations", headers=headers)).json()
    assert listed["items"][0]["kind"] == "dialogflow" and listed["items"][0]["error"] is None

    assert (await hub.delete("/api/v1/integrations/dialogflow", headers=headers)).status == 204
    assert (await say(hub, app, echo, "pricing"))[0].startswith("Starter is free")
    assert (await hub.delete("/api/v1/integrations/dialogflow", headers=headers)).status == 404


async def test_credentials_are_checked_before_they_are_kept(hub: TestClient) -> None:
    headers = await manager(hub)
    for key, says in (
        ({"type": "authorized_user"}, "service account"),
        ({"type": "service_account", "client_email": "x@y", "private_key": "nope"}, "usable"),
    ):
        resp = await hub.put(
            "/api/v1/integrations/dialogflow",
            json={"project": "space-agent", "credentials": key},
            headers=headers,
        )
        assert resp.status == 400 and says in (await resp.json())["detail"]
    bad_project = await hub.put(
        "/api/v1/integrations/dialogflow", json={"project": "Not A Project"}, headers=headers
    )
    assert bad_project.status == 400


async def test_refused_credentials_reach_the_admins_once(
    hub: TestClient, dialogflow: FakeDialogflow, caplog: pytest.LogCaptureFixture
) -> None:
    app, headers = hub.server.app, await manager(hub)
    echo = await app[CHANNELS].get(await add_channel(app, "echo"))
    await hub.put(
        "/api/v1/integrations/dialogflow", json={"project": "space-agent"}, headers=headers
    )
    dialogflow.fail = grpc.StatusCode.PERMISSION_DENIED
    with caplog.at_level(logging.WARNING):
        assert (await say(hub, app, echo, "hello"))[-1] == BOT_ERROR_TEXT
        assert (await say(hub, app, echo, "pricing"))[0] == BOT_ERROR_TEXT
    refused = [r for r in caplog.records if r.getMessage() == "bot credentials refused"]
    assert len(refused) == 1  # once, not per message
    (item,) = (await (await hub.get("/api/v1/integrations", headers=headers)).json())["items"]
    assert "refused the credentials for project space-agent" in item["error"]
    assert "Dialogflow API Client" in item["error"]  # what to do about it
