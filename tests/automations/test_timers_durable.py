"""Automation timers are durable and fire exactly once, in real processes.

- `kill -9` while `no_reply` deadlines wait: they come due while the hub is down, and
  when it starts again each fires once (one run, one "Still there?"), none is lost.
- Two `chancenter worker` processes on PostgreSQL + Redis share 1,000 due timers: every
  timer fires once (one run, one message stored, one message at the platform) however
  the two clocks' rounds interleave.

Covers `automations.clock`, `bot.workspace.triggers` (`arm_no_reply`).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.clock import db_datetime, now
from bot.storage.tables import (
    automation_runs,
    automation_timers,
    automations,
    channels,
    contacts,
    conversations,
    identities,
    messages,
    outbox,
    work_items,
)
from bot.workspace.triggers import no_reply_key
from tests.conftest import TEMPLATE
from tests.fakes.telegram import FakeTelegram
from tests.scenarios.hub import HubProcess
from tests.servers import Postgres, Redis

pytestmark = pytest.mark.timeout(120)

NUDGE = """\
name: nudge
trigger: {{on: no_reply, from: contact, after: {after}}}
actions:
  - send_message: "Still there?"
"""
TOKEN = "123456:TEST-token"


async def chancenter(env: dict[str, str], *args: str) -> str:
    """Run the CLI against the hub's database (without blocking this event loop)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def add_nudge(tmp_path: Path, env: dict[str, str], after: str) -> None:
    """Save the `no_reply` automation through the CLI, i.e. the API."""
    definition = tmp_path / "nudge.yml"
    definition.write_text(NUDGE.format(after=after))
    await chancenter(env, "automations", "add", str(definition))


# --- 1. kill -9 with deadlines pending ------------------------------------------------

VISITORS = 50


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db, timeout=10) as conn:
        return conn.execute(sql).fetchall()


def scalar(db: Path, sql: str) -> Any:
    return rows(db, sql)[0][0]


async def greet(session: aiohttp.ClientSession, url: str) -> str:
    """A visitor says hi and waits for the bot's answer (which arms the deadline); their
    token, to come back with."""
    async with session.ws_connect(url) as ws:
        await ws.send_json({"type": "hello", "token": None})
        token = (await ws.receive_json(timeout=10))["token"]
        await ws.receive_json(timeout=10)  # the (empty) history
        await ws.send_json({"type": "message", "id": "m0", "text": "hi"})
        while True:
            frame = await ws.receive_json(timeout=15)
            if frame["type"] == "message" and frame["message"]["direction"] == "out":
                return str(token)


async def history(session: aiohttp.ClientSession, url: str, token: str) -> list[str]:
    """What a returning visitor reads: the texts we sent them."""
    async with session.ws_connect(url) as ws:
        await ws.send_json({"type": "hello", "token": token})
        await ws.receive_json(timeout=10)  # the session
        frame = await ws.receive_json(timeout=10)
        assert frame["type"] == "history", frame
        return [
            " ".join(p.get("text", "") for p in m["parts"])
            for m in frame["messages"]
            if m["direction"] == "out"
        ]


async def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        await asyncio.sleep(0.1)


async def test_deadlines_due_while_the_hub_is_killed_fire_once_when_it_is_back(
    tmp_path: Path,
) -> None:
    hub = HubProcess(tmp_path)
    db = hub.db_path
    try:
        await hub.start()
        # long enough that every visitor below is answered before the first comes due
        await add_nudge(tmp_path, hub.env, "6s")
        ws_url = f"{hub.url}/webchat/ws?channel={await hub.webchat_channel()}"
        async with aiohttp.ClientSession() as session:
            tokens = await asyncio.gather(*(greet(session, ws_url) for _ in range(VISITORS)))
        # each answer armed a deadline in its commit
        await wait_for(
            lambda: scalar(db, "SELECT count(*) FROM automation_timers") == VISITORS,
            10,
            "a no_reply deadline per conversation",
        )
        hub.kill()

        pending = rows(db, "SELECT kind, key, due_at FROM automation_timers")
        killed_at = now()
        assert {kind for kind, _, _ in pending} == {"no_reply"}
        due = [db_datetime(at) for _, _, at in pending]
        assert all(at is not None and at > killed_at for at in due), (
            "the crash came too late to test anything: a deadline was due already"
        )
        assert scalar(db, "SELECT count(*) FROM automation_runs") == 0
        # down until every deadline has passed
        last = max(at for at in due if at is not None)
        await asyncio.sleep((last - now()).total_seconds() + 0.5)

        started = time.monotonic()
        await hub.start()

        def settled() -> bool:
            return (
                scalar(
                    db,
                    "SELECT (SELECT count(*) FROM automation_runs) = "
                    f"{VISITORS} AND (SELECT count(*) FROM automation_timers) = 0 "
                    "AND (SELECT count(*) FROM work_items) = 0 "
                    "AND (SELECT count(*) FROM outbox) = 0",
                )
                == 1
            )

        await wait_for(settled, 20, "every deadline fired and its message sent")
        print(f"after the restart: fired and sent in {time.monotonic() - started:.1f}s")
        await asyncio.sleep(2.5)  # more clock rounds: nothing fires a second time

        conversation_ids = {c for (c,) in rows(db, "SELECT id FROM conversations")}
        assert len(conversation_ids) == VISITORS
        assert scalar(db, "SELECT count(*) FROM automation_timers") == 0
        runs = rows(db, "SELECT conversation_id, trigger, status FROM automation_runs")
        assert len(runs) == VISITORS
        assert Counter(c for c, _, _ in runs) == Counter(conversation_ids)  # one each
        assert {(t, s) for _, t, s in runs} == {("no_reply", "done")}
        nudges = rows(
            db,
            "SELECT conversation_id, parts, status FROM messages "
            "WHERE direction = 'out' AND sender_type = 'automation'",
        )
        assert Counter(c for c, _, _ in nudges) == Counter(conversation_ids)  # one each
        assert all("Still there?" in parts and status == "sent" for _, parts, status in nudges)

        # each visitor, back, reads the nudge once, after the bot's answer
        async with aiohttp.ClientSession() as session:
            seen = await asyncio.gather(*(history(session, ws_url, t) for t in tokens))
        for texts in seen:
            assert texts.count("Still there?") == 1 and texts[-1] == "Still there?", texts
    finally:
        hub.stop()


# --- 2. two workers, PostgreSQL + Redis, 1,000 timers -----------------------------------

TIMERS = 1_000
SPREAD = 4.0  # seconds over which the timers come due, so both workers' rounds take some


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    server = TestServer(fake.app())
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    await server.close()


async def seed(engine: AsyncEngine, channel_id: str, n: int) -> list[tuple[int, int]]:
    """`n` Telegram contacts with one open conversation each: (contact, conversation)."""
    async with engine.begin() as conn:
        space_id = (
            await conn.execute(sa.select(channels.c.space_id).where(channels.c.id == channel_id))
        ).scalar_one()
        inserted = await conn.execute(
            contacts.insert()
            .values([{"space_id": space_id, "name": f"c{i}"} for i in range(n)])
            .returning(contacts.c.id)
        )
        contact_ids = sorted(inserted.scalars())
        identity_ids = (
            await conn.execute(
                identities.insert()
                .values(
                    [
                        {"contact_id": c, "channel_id": channel_id, "external_id": str(20_000 + i)}
                        for i, c in enumerate(contact_ids)
                    ]
                )
                .returning(identities.c.id, identities.c.contact_id)
            )
        ).all()
        found = (
            await conn.execute(
                conversations.insert()
                .values(
                    [
                        {
                            "space_id": space_id,
                            "contact_id": contact_id,
                            "channel_id": channel_id,
                            "identity_id": identity_id,
                        }
                        for identity_id, contact_id in identity_ids
                    ]
                )
                .returning(conversations.c.contact_id, conversations.c.id)
            )
        ).all()
    return [(c, v) for c, v in found]


def fired_by(worker: HubProcess) -> int:
    """Timers the worker's clock took, from its log lines."""
    text = worker.log.read_text() if worker.log.exists() else ""
    return sum(
        int(m.group(1))
        for line in text.splitlines()
        if 'msg="automation timers fired"' in line
        for m in [re.search(r" timers=(\d+)", line)]
        if m
    )


async def test_two_workers_fire_a_thousand_timers_none_twice(
    tmp_path: Path,
    postgres: Postgres | None,
    redis_server: Redis,
    telegram: FakeTelegram,
) -> None:
    if postgres is None:
        pytest.skip(Postgres.available() or "no PostgreSQL")
    postgres.sql(f"CREATE DATABASE timers TEMPLATE {TEMPLATE}")
    env = {
        "CHANCENTER_DATABASE_URL": f"{postgres.url}/timers",
        "CHANCENTER_REDIS_URL": redis_server.url,
        "CHANCENTER_TELEGRAM_API_BASE": telegram.url,
        "CHANCENTER_PUBLIC_URL": "https://hub.example.com",
        "CHANCENTER_DATA_DIR": str(tmp_path / "data"),  # one secret key for all
        "CHANCENTER_LOG_LEVEL": "INFO",
    }
    workers = [HubProcess(tmp_path / f"worker{n}", env, ("worker",)) for n in range(2)]
    out = await chancenter(workers[0].env, "channels", "add", "telegram", "--token", TOKEN)
    channel_id = out.split()[4]
    await add_nudge(tmp_path, workers[0].env, "1h")
    engine = create_async_engine(env["CHANCENTER_DATABASE_URL"])
    try:
        async with engine.begin() as conn:  # a paid-broadcast bot: 1,000 messages a second
            await conn.execute(
                channels.update()
                .where(channels.c.id == channel_id)
                .values(settings={"per_second": 1000})
            )
            automation_id, space_id = (
                await conn.execute(
                    sa.select(automations.c.id, automations.c.space_id).where(
                        automations.c.name == "nudge"
                    )
                )
            ).one()
        pairs = await seed(engine, channel_id, TIMERS)
        for worker in workers:
            await worker.start()

        start = now() + timedelta(seconds=1)
        async with engine.begin() as conn:  # as `arm_no_reply` writes them
            await conn.execute(
                automation_timers.insert(),
                [
                    {
                        "space_id": space_id,
                        "automation_id": automation_id,
                        "kind": "no_reply",
                        "contact_id": contact_id,
                        "conversation_id": conversation_id,
                        "due_at": start + timedelta(seconds=SPREAD * n / TIMERS),
                        "payload": {"waits_for": "contact"},
                        "key": no_reply_key(automation_id, conversation_id),
                    }
                    for n, (contact_id, conversation_id) in enumerate(pairs)
                ],
            )
        started = time.monotonic()

        async def count(table: sa.Table) -> int:
            async with engine.connect() as conn:
                query = sa.select(sa.func.count()).select_from(table)
                return int((await conn.execute(query)).scalar_one())

        deadline = time.monotonic() + 45
        while True:
            left = {
                "runs": TIMERS - await count(automation_runs),
                "timers": await count(automation_timers),
                "work": await count(work_items),
                "outbox": await count(outbox),
                "platform": TIMERS - len(telegram.sent("sendMessage")),
            }
            if not any(left.values()):
                break
            assert time.monotonic() < deadline, f"left: {left}\n{_tail(workers)}"
            await asyncio.sleep(0.5)
        took = time.monotonic() - started
        await asyncio.sleep(2.5)  # more clock rounds in both workers: nothing fires again

        async with engine.connect() as conn:
            runs = (
                await conn.execute(
                    sa.select(
                        automation_runs.c.automation_id,
                        automation_runs.c.conversation_id,
                        automation_runs.c.trigger,
                        automation_runs.c.status,
                    )
                )
            ).all()
            nudges = (
                await conn.execute(
                    sa.select(messages.c.conversation_id, messages.c.status).where(
                        messages.c.direction == "out", messages.c.sender_type == "automation"
                    )
                )
            ).all()
            assert not (await conn.execute(sa.select(automation_timers.c.id))).all()
        expected = {(automation_id, conversation_id) for _, conversation_id in pairs}
        assert len(runs) == TIMERS
        assert Counter((a, c) for a, c, _, _ in runs) == Counter(expected)  # each once
        assert {(t, s) for _, _, t, s in runs} == {("no_reply", "done")}
        assert len(nudges) == TIMERS
        assert {c for c, _ in nudges} == {c for _, c in pairs}
        assert {s for _, s in nudges} == {"sent"}
        # the platform: one "Still there?" per chat, none twice
        sends = telegram.sent("sendMessage")
        assert len(sends) == TIMERS
        chats = Counter(int(call.params["chat_id"]) for call in sends)
        assert chats == Counter(20_000 + i for i in range(TIMERS))
        assert {call.params["text"] for call in sends} == {"Still there?"}

        # the clocks' own account: 1,000 timers taken in all, between both workers
        split = [fired_by(w) for w in workers]
        print(f"1,000 timers fired and sent in {took:.1f}s; taken by the workers: {split}")
        assert sum(split) == TIMERS
    finally:
        for worker in workers:
            worker.stop()
        await engine.dispose()


def _tail(workers: list[HubProcess]) -> str:
    return "\n".join(w.log.read_text()[-2000:] for w in workers if w.log.exists())
