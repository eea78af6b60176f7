"""Fake Meta Graph API and a hub pointed at it, with Messenger and WhatsApp channels added."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.keys import CHANNELS, DEFAULT_SPACE
from bot.settings import Settings
from bot.workspace.channel_admin import add_channel
from channels.meta import MetaChannel
from tests.conftest import closed_within
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
