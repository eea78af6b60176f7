"""A broadcast survives `kill -9`: after a restart it completes, no contact receives it
twice, and the report counts what was in flight when the process died.

- One `chancenter serve` on SQLite, killed in the middle of a 400-contact broadcast.
- Two `chancenter worker` processes on PostgreSQL + Redis; one is killed, the other takes
  its partitions and finishes the broadcast.

The fake Telegram answers each send after 100 ms, so sends are always in flight.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.clock import now
from bot.storage.tables import broadcast_recipients, broadcasts, channels, messages, views
from tests.automations.test_timers_durable import TOKEN, chancenter, seed, wait_for
from tests.conftest import TEMPLATE
from tests.fakes.telegram import FakeTelegram
from tests.scenarios.hub import HubProcess
from tests.servers import Postgres, Redis

pytestmark = pytest.mark.timeout(120)
CONTACTS = 400


@pytest.fixture
async def slow_telegram() -> AsyncIterator[FakeTelegram]:
    """The fake Bot API, answering each send after 100 ms."""
    fake = FakeTelegram()
    app = fake.app()

    @web.middleware
    async def slow(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.endswith("/sendMessage"):
            await asyncio.sleep(0.1)
        return await handler(request)

    app.middlewares.append(slow)
    server = TestServer(app)
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    await server.close()


async def running_broadcast(
    engine: AsyncEngine, env: dict[str, str], per_second: int = 100
) -> tuple[int, str]:
    """A Telegram channel (`per_second` sends), its contacts, and a started broadcast."""
    out = await chancenter(env, "channels", "add", "telegram", "--token", TOKEN)
    channel_id = out.split()[4]
    async with engine.begin() as conn:
        await conn.execute(
            channels.update()
            .where(channels.c.id == channel_id)
            .values(settings={"per_second": per_second})
        )
    await seed(engine, channel_id, CONTACTS)
    async with engine.begin() as conn:
        space_id = (
            await conn.execute(sa.select(channels.c.space_id).where(channels.c.id == channel_id))
        ).scalar_one()
        view_id = (
            await conn.execute(
                views.insert()
                .values(space_id=space_id, name="all", filter={"all": []})
                .returning(views.c.id)
            )
        ).scalar_one()
        broadcast_id = (
            await conn.execute(
                broadcasts.insert()
                .values(
                    space_id=space_id,
                    name="December offer",
                    channel_id=channel_id,
                    view_id=view_id,
                    segment={"all": []},  # what starting it keeps of the view
                    message={"text": "20% off until Sunday"},
                    settings={},
                    status="running",
                    started_at=now(),
                    created_at=now(),
                )
                .returning(broadcasts.c.id)
            )
        ).scalar_one()
    return broadcast_id, channel_id


async def statuses(engine: AsyncEngine, broadcast_id: int) -> Counter[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(broadcast_recipients.c.status, sa.func.count())
            .where(broadcast_recipients.c.broadcast_id == broadcast_id)
            .group_by(broadcast_recipients.c.status)
        )
        return Counter(dict(rows.all()))


async def check_once_each(
    engine: AsyncEngine, broadcast_id: int, telegram: FakeTelegram, in_flight: int | None
) -> None:
    """Completed; every contact sent to once or counted as interrupted; none twice."""
    async with engine.connect() as conn:
        status = (
            await conn.execute(
                sa.select(broadcasts.c.status).where(broadcasts.c.id == broadcast_id)
            )
        ).scalar_one()
        stored = (
            await conn.execute(
                sa.select(sa.func.count()).where(messages.c.sender_type == "broadcast")
            )
        ).scalar_one()
    counts = await statuses(engine, broadcast_id)
    chats = Counter(c.params["chat_id"] for c in telegram.sent("sendMessage"))
    assert status == "completed"
    assert max(chats.values()) == 1, "a contact received the broadcast twice"
    assert counts["sent"] + counts["interrupted"] == CONTACTS, counts
    if in_flight is not None:
        assert counts["interrupted"] == in_flight, (counts, in_flight)
    assert counts["sent"] <= len(chats) <= CONTACTS
    assert stored == CONTACTS  # one message in each contact's history, however it ended


async def test_kill_9_in_the_middle_then_a_restart_completes_it_once_each(
    tmp_path: Path, slow_telegram: FakeTelegram
) -> None:
    hub = HubProcess(tmp_path, {"CHANCENTER_TELEGRAM_API_BASE": slow_telegram.url})
    engine = create_async_engine(hub.env["CHANCENTER_DATABASE_URL"])
    try:
        await hub.start()
        broadcast_id, _ = await running_broadcast(engine, hub.env)
        await wait_for(lambda: len(slow_telegram.sent()) >= 100, 30, "a hundred sends")
        hub.kill()
        before = await statuses(engine, broadcast_id)
        in_flight = before["sending"]
        assert in_flight > 0 and before["queued"] > 0, before

        await hub.start()
        for _ in range(300):
            done = await statuses(engine, broadcast_id)
            if done["queued"] == done["sending"] == 0:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # the runner marks it completed on its next look
        await check_once_each(engine, broadcast_id, slow_telegram, in_flight)
    finally:
        hub.stop()
        await engine.dispose()


async def test_a_killed_worker_s_share_is_finished_by_the_other(
    tmp_path: Path, postgres: Postgres | None, redis_server: Redis, slow_telegram: FakeTelegram
) -> None:
    if postgres is None:
        pytest.skip(Postgres.available() or "no PostgreSQL")
    postgres.sql(f"CREATE DATABASE broadcasts TEMPLATE {TEMPLATE}")
    env = {
        "CHANCENTER_DATABASE_URL": f"{postgres.url}/broadcasts",
        "CHANCENTER_REDIS_URL": redis_server.url,
        "CHANCENTER_TELEGRAM_API_BASE": slow_telegram.url,
        "CHANCENTER_PUBLIC_URL": "https://hub.example.com",
        "CHANCENTER_DATA_DIR": str(tmp_path / "data"),
    }
    workers = [HubProcess(tmp_path / f"worker{n}", env, ("worker",)) for n in range(2)]
    engine = create_async_engine(env["CHANCENTER_DATABASE_URL"])
    try:
        # 8 seconds of sends: both workers are up long before the end
        broadcast_id, _ = await running_broadcast(engine, workers[0].env, per_second=50)
        await asyncio.gather(*(worker.start() for worker in workers))
        await wait_for(lambda: len(slow_telegram.sent()) >= 100, 30, "a hundred sends")
        workers[0].kill()
        killed = await statuses(engine, broadcast_id)
        assert killed["queued"] > 0, killed
        for _ in range(600):  # the survivor takes the partitions when their leases lapse
            done = await statuses(engine, broadcast_id)
            if done["queued"] == done["sending"] == 0:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)
        await check_once_each(engine, broadcast_id, slow_telegram, None)
        # interrupted: the dead worker's `sending` rows (the survivor's own finished)
        assert (await statuses(engine, broadcast_id))["interrupted"] <= killed["sending"]
    finally:
        for worker in workers:
            worker.stop()
        await engine.dispose()
