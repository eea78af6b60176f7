"""Shared fixtures: settings on a temporary SQLite file, the app, and small helpers.

Covers `bot.app`, `bot.keys`, `bot.plugins`.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.keys import CHANNELS, DB, DEFAULT_SPACE, PLUGINS
from bot.plugins import Plugins
from bot.settings import Settings
from bot.storage.migrate import upgrade
from bot.storage.tables import channels
from tests.fakes.echo_channel import EchoChannel
from tests.servers import Postgres, Redis

AppClient = Callable[..., Awaitable[TestClient]]


BACKENDS = ["sqlite", "postgresql"]
TEMPLATE = "chancenter_template"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres | None]:
    """One server for the session, with the schema migrated once into a template database."""
    if Postgres.available() is not None:
        yield None
        return
    server = Postgres()
    server.start()
    try:
        server.sql(f"CREATE DATABASE {TEMPLATE}")
        upgrade(f"{server.url}/{TEMPLATE}")
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Redis]:
    """A throwaway redis-server for one test (it may stop and start it again)."""
    if (why := Redis.available()) is not None:
        pytest.skip(why)
    server = Redis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Each test runs on SQLite and, where the server is installed, again on PostgreSQL."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres")
        if server is None:
            pytest.skip(Postgres.available() or "no PostgreSQL")
        name = f"t{next(_databases)}"
        server.sql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        url = f"{server.url}/{name}"
    return Settings(
        database_url=url,
        data_dir=tmp_path / "data",
        secret_key="test-secret",
        webhooks_allow_private=True,  # receivers in tests listen on loopback
    )


_databases = itertools.count(1)


@pytest.fixture
def plugins() -> Plugins:
    """The installed plugins plus the echo test channel."""
    found = Plugins.discover()
    found.channels["echo"] = EchoChannel
    return found


@pytest.fixture
async def client(
    aiohttp_client: Any, settings: Settings, plugins: Plugins
) -> AsyncIterator[TestClient]:
    app = create_app(settings, plugins)
    test_client = await aiohttp_client(app)
    yield test_client
    await closed_within(test_client, 15)


async def closed_within(test_client: TestClient, seconds: float) -> None:
    """Close the app, and if its shutdown hangs, say which tasks are stuck where."""
    try:
        await asyncio.wait_for(asyncio.shield(test_client.close()), seconds)
    except TimeoutError:
        stuck = []
        for task in asyncio.all_tasks():
            frames = task.get_stack()
            where = " <- ".join(f"{f.f_code.co_filename}:{f.f_lineno}" for f in frames)
            stuck.append(f"{task.get_name()}: {where}")
        pytest.fail("app shutdown hung:\n" + "\n".join(stuck))


@pytest.fixture
def app(client: TestClient) -> web.Application:
    return client.server.app


async def add_channel(app: web.Application, kind: str, space_id: int | None = None) -> str:
    channel_id = f"{kind}-test-{space_id or 0}"
    async with app[DB].write() as conn:
        await conn.execute(
            channels.insert().values(
                id=channel_id,
                space_id=space_id or app[DEFAULT_SPACE],
                kind=kind,
                name=kind,
                settings={},
            )
        )
    return channel_id


@pytest.fixture
async def echo(app: web.Application) -> EchoChannel:
    channel = await app[CHANNELS].get(await add_channel(app, "echo"))
    assert isinstance(channel, EchoChannel)
    return channel


@pytest.fixture
async def webchat_channel(app: web.Application) -> str:
    async with app[DB].read() as conn:
        return (
            await conn.execute(sa.select(channels.c.id).where(channels.c.kind == "webchat"))
        ).scalar_one()


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll `check` (plain or async) until it returns something truthy (background work
    is asynchronous)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(0.02)


def calls_to(obj: Any, name: str) -> list[tuple[Any, ...]]:
    """The arguments of each call of the async method `obj.name` from now on (it still runs)."""
    calls: list[tuple[Any, ...]] = []
    method = getattr(obj, name)

    async def recorded(*args: Any) -> Any:
        calls.append(args)
        return await method(*args)

    setattr(obj, name, recorded)
    return calls


def held_handling(app: web.Application, consume: bool = False) -> tuple[list[str], asyncio.Event]:
    """A first handler noting each message's external id, then waiting for the event; with
    `consume` it ends the message's handling there (no bot answers)."""
    handled: list[str] = []
    release = asyncio.Event()

    async def held(event: Any, _ctx: Any) -> bool:
        handled.append(event.external_id)
        await release.wait()
        return consume

    app[PLUGINS].handlers.insert(0, held)
    return handled, release


async def count(app: web.Application, table: sa.Table, *where: Any) -> int:
    async with app[DB].read() as conn:
        return (
            await conn.execute(sa.select(sa.func.count()).select_from(table).where(*where))
        ).scalar_one()


async def single(app: web.Application, column: Any) -> Any:
    """The one value of `column` in the database (a test's only contact, say)."""
    async with app[DB].read() as conn:
        return (await conn.execute(sa.select(column))).scalar_one()
