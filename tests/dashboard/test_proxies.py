"""Signing in behind a reverse proxy (`dashboard.session.client_address`): with the proxy
trusted, tries are counted per client address from X-Forwarded-For, so one guesser does
not lock everyone out (without it, `test_session` shows the header is not believed)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.settings import Settings
from bot.storage.tables import dashboard_sessions
from dashboard.session import ATTEMPTS
from tests.dashboard.conftest import person, rows, sign_in


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test client connects from 127.0.0.1: here, the proxy."""
    proxies = Settings(trusted_proxies="127.0.0.1").trusted_proxies
    return settings.model_copy(update={"trusted_proxies": proxies})


async def test_behind_a_trusted_proxy_each_client_has_its_own_tries(
    client: TestClient, app: Application
) -> None:
    await person(app, "bea@example.com")
    for n in range(ATTEMPTS):  # the guesser makes up a first hop; the proxy appends theirs
        refused = await sign_in(client, f"x{n}@example.com", "no", f"10.9.9.{n}, 203.0.113.7")
        assert refused.status == 401
    blocked = await sign_in(client, "y@example.com", "no", "198.51.100.1, 203.0.113.7")
    assert blocked.status == 429
    bea = await sign_in(client, "bea@example.com", forwarded="192.0.2.44")
    assert bea.status == 303  # another client: the guesser did not lock them out
    assert await rows(app, sa.select(dashboard_sessions.c.address)) == [("192.0.2.44",)]
