"""Fake Meta Graph API and a hub pointed at it, with Messenger and WhatsApp channels added;
the fake Bot Framework services and a hub pointed at them, with a Teams bot."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.keys import CHANNELS, DEFAULT_SPACE
from bot.settings import Settings
from bot.workspace.channel_admin import add_channel
from channels.botframework import BotFrameworkChannel
from channels.meta import MetaChannel
from tests.conftest import closed_within
from tests.fakes.botframework import App, FakeBotFramework, teams_activity
from tests.fakes.graph import FakeGraph

APP_SECRET = "meta-app-secret"
VERIFY_TOKEN = "my-verify-token"


@pytest.fixture
async def graph() -> Any:
    fake = FakeGraph()
    server = TestServer(fake.app())
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    await server.close()


@pytest.fixture
async def meta_hub(aiohttp_client: Any, settings: Settings, graph: FakeGraph) -> Any:
    client = await aiohttp_client(
        create_app(settings.model_copy(update={"graph_api_base": graph.url}))
    )
    yield client
    await closed_within(client, 15)


async def meta_channel(hub: TestClient, kind: str, **given: str) -> MetaChannel:
    app = hub.server.app
    info = await add_channel(
        app,
        app[DEFAULT_SPACE],
        kind,
        {"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN, **given},
    )
    channel = await app[CHANNELS].get(info.id)
    assert isinstance(channel, MetaChannel)
    return channel


def signed(body: Any, secret: str = APP_SECRET) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"X-Hub-Signature-256": signature, "Content-Type": "application/json"}


# --- the Bot Framework ----------------------------------------------------------------

APP_ID = "5e1a9b2c-0000-4000-8000-00000000a11d"
APP_PASSWORD = "bf-client-secret"


@pytest.fixture
async def bf(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeBotFramework]:
    async with FakeBotFramework(apps={APP_ID: App(APP_PASSWORD)}) as fake:
        # msal and the SDK fetch with `requests`, which trusts the fake's certificate so
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", fake.ca_file)
        yield fake


def pointed_at(bf: FakeBotFramework) -> dict[str, str]:
    """The settings that send a hub's Bot Framework requests to the fake."""
    return {"botframework_openid_url": bf.openid_url, "botframework_login_url": bf.login_url}


@pytest.fixture
async def bf_hub(aiohttp_client: Any, settings: Settings, bf: FakeBotFramework) -> Any:
    client = await aiohttp_client(create_app(settings.model_copy(update=pointed_at(bf))))
    yield client
    await closed_within(client, 15)


async def teams_channel(hub: TestClient, **given: str) -> BotFrameworkChannel:
    app = hub.server.app
    given = {"app_id": APP_ID, "app_password": APP_PASSWORD, **given}
    info = await add_channel(app, app[DEFAULT_SPACE], "botframework", given)
    channel = await app[CHANNELS].get(info.id)
    assert isinstance(channel, BotFrameworkChannel)
    return channel


async def from_teams(
    hub: TestClient,
    bf: FakeBotFramework,
    channel: BotFrameworkChannel,
    body: dict[str, Any] | None = None,
    *,
    authorization: str | None = None,
    **activity: Any,
) -> Any:
    """An activity to the channel (`body`, else a Teams message built from `activity`),
    signed as the Bot Connector signs it unless `authorization` is given."""
    if body is None:
        body = teams_activity(app_id=channel.app_id, service_url=bf.service_url, **activity)
    if authorization is None:
        authorization = bf.sign(channel.app_id, bf.service_url)
    headers = {"Authorization": authorization} if authorization else {}
    return await hub.post(f"/webhooks/{channel.id}", json=body, headers=headers)
