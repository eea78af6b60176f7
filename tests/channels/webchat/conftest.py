"""The `visitor` fixture: a widget already through its hello."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from tests.channels.webchat.widget import Visitor


@pytest.fixture
async def visitor(client: TestClient, webchat_channel: str) -> Visitor:
    v = Visitor(client, webchat_channel)
    await v.connect()
    return v
