"""Signed-in browsers for the dashboard tests: people of the default space with passwords."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import space_members
from bot.workspace.bootstrap import user_by_email
from bot.workspace.passwords import set_password

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def person(app: Application, email: str, role: str = "agent", name: str = "Bea") -> int:
    async with app[DB].write() as conn:
        user_id = await user_by_email(conn, name, email)
        await conn.execute(
            space_members.insert().values(space_id=app[DEFAULT_SPACE], user_id=user_id, role=role)
        )
        await set_password(conn, email, PASSWORD)
    return user_id


async def sign_in(
    client: TestClient, email: str, password: str = PASSWORD, forwarded: str | None = None
) -> Any:
    """Sign in through the form; `forwarded`: as an X-Forwarded-For header says."""
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    page = await client.get("/app/login", headers=headers)
    csrf = CSRF.search(await page.text())
    assert csrf is not None
    return await client.post(
        "/app/login",
        data={"email": email, "password": password, "csrf": csrf[1], "next": "/app/"},
        headers=headers,
        allow_redirects=False,
    )


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "no CSRF token on the page"
    return found[1]


@pytest.fixture
async def agent(client: TestClient, app: Application) -> int:
    user_id = await person(app, "bea@example.com")
    resp = await sign_in(client, "bea@example.com")
    assert resp.status == 303, await resp.text()
    return user_id


@pytest.fixture
async def browsers(client: TestClient) -> AsyncIterator[Callable[[], TestClient]]:
    """More browsers on the same hub, each with its own cookies."""
    made: list[TestClient] = []

    def browser() -> TestClient:
        made.append(TestClient(client.server))  # the hub's server, already started
        return made[-1]

    yield browser
    for other in made:
        await other.session.close()  # its own cookies only: the hub is the fixture's


def space_url(app: Application, path: str) -> str:
    return f"/app/{app[DEFAULT_SPACE]}/{path}"


async def rows(app: Application, query: sa.Select[Any]) -> list[Any]:
    async with app[DB].read() as conn:
        return list((await conn.execute(query)).all())
