"""Scale-out under faults: PostgreSQL, Redis, two `web` and two `worker` processes.

5,000 Telegram messages over 300 conversations go to both web processes; one worker is
killed with SIGKILL halfway and Redis is restarted; at the end every message is stored
once, answered once at the (fake) platform, in order within each conversation, and
nothing is left waiting.

Covers `bot.pipeline.redis_queue`, `bot.pipeline.partitions`, `bot.storage.redis_keys`.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import create_async_engine

from bot.storage.tables import channels, messages, outbox, work_items
from channels.telegram import SECRET_HEADER
from tests.conftest import TEMPLATE
from tests.fakes.telegram import FakeTelegram
from tests.scenarios.hub import HubProcess
from tests.servers import Postgres, Redis

CHATS = 300
MESSAGES = 5_000
TOKEN = "123456:TEST-token"
ANSWERS = {"pricing": "Starter is free", "opening hours": "We're open"}

pytestmark = pytest.mark.timeout(600)


def script(chat: int) -> list[str]:
    """What one contact says: a greeting, then questions with one answer each."""
    count = MESSAGES // CHATS + (1 if chat < MESSAGES % CHATS else 0)
    questions = itertools.cycle(["pricing", "opening hours"])
    return ["hello", *(next(questions) for _ in range(count - 1))]


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    server = TestServer(fake.app())
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    await server.close()


async def test_two_webs_two_workers_a_killed_worker_and_a_redis_restart(
    tmp_path: Path,
    postgres: Postgres | None,
    redis_server: Redis,
    telegram: FakeTelegram,
) -> None:
    if postgres is None:
        pytest.skip(Postgres.available() or "no PostgreSQL")
    postgres.sql(f"CREATE DATABASE scale TEMPLATE {TEMPLATE}")
    env = {
        "CHANCENTER_DATABASE_URL": f"{postgres.url}/scale",
        "CHANCENTER_REDIS_URL": redis_server.url,
        "CHANCENTER_TELEGRAM_API_BASE": telegram.url,
        "CHANCENTER_PUBLIC_URL": "https://hub.example.com",
        "CHANCENTER_LOG_LEVEL": "WARNING",
    }
    webs = [HubProcess(tmp_path / f"web{n}", env) for n in range(2)]
    workers = [HubProcess(tmp_path / f"worker{n}", env, ("worker",)) for n in range(2)]
    for web in webs:
        web.env["CHANCENTER_DATA_DIR"] = str(tmp_path / "data")  # one secret key for all
    for worker in workers:
        worker.env["CHANCENTER_DATA_DIR"] = str(tmp_path / "data")
    # the fake Telegram runs in this event loop: the CLI must not block it
    added = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "channels",
        "add",
        "telegram",
        "--token",
        TOKEN,
        env=webs[0].env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(added.communicate(), 60)
    assert added.returncode == 0, err.decode()
    channel_id = out.decode().split()[4]
    secret = telegram.webhooks[TOKEN]["secret_token"]
    engine = create_async_engine(env["CHANCENTER_DATABASE_URL"])
    async with engine.begin() as conn:  # a paid-broadcast bot: 1,000 messages a second
        await conn.execute(
            channels.update()
            .where(channels.c.id == channel_id)
            .values(settings={"per_second": 1000})
        )
    try:
        for process in (*webs, *workers):
            await process.start()
        updates = itertools.count(1)
        sent = 0
        killed = asyncio.Event()

        async def contact(session: aiohttp.ClientSession, chat: int) -> None:
            nonlocal sent
            for n, text in enumerate(script(chat)):
                update = {
                    "update_id": next(updates),
                    "message": {
                        "message_id": n + 1,
                        "date": 1767225600,
                        "chat": {"id": 10_000 + chat, "type": "private"},
                        "from": {"id": 10_000 + chat, "is_bot": False, "first_name": f"c{chat}"},
                        "text": text,
                    },
                }
                web = webs[(chat + n) % 2]  # both web processes take every conversation
                for _ in range(50):  # a web process is briefly unready while Redis restarts
                    try:
                        async with session.post(
                            f"{web.url}/webhooks/{channel_id}",
                            json=update,
                            headers={SECRET_HEADER: secret},
                        ) as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.2)
                else:
                    raise AssertionError(f"chat {chat}: message {n} was never accepted")
                sent += 1
                if sent == MESSAGES // 2 and not killed.is_set():
                    killed.set()

        async def faults() -> None:
            await killed.wait()
            workers[0].kill()  # mid-run, with work read and not acknowledged
            redis_server.stop()
            await asyncio.sleep(1)
            redis_server.start()

        async with aiohttp.ClientSession() as session:
            sem = asyncio.Semaphore(64)

            async def bounded(chat: int) -> None:
                async with sem:
                    await contact(session, chat)

            await asyncio.gather(faults(), *(bounded(chat) for chat in range(CHATS)))
        assert sent == MESSAGES

        async def done() -> bool:
            async with engine.connect() as conn:
                left = (
                    await conn.execute(sa.select(sa.func.count()).select_from(work_items))
                ).scalar()
                unsent = (
                    await conn.execute(sa.select(sa.func.count()).select_from(outbox))
                ).scalar()
            return left == 0 and unsent == 0 and len(telegram.sent("sendMessage")) >= MESSAGES

        deadline = asyncio.get_running_loop().time() + 240
        while not await done():
            assert asyncio.get_running_loop().time() < deadline, _state(telegram, workers)
            await asyncio.sleep(1)

        async with engine.connect() as conn:
            inbound = (
                await conn.execute(sa.select(sa.func.count()).where(messages.c.direction == "in"))
            ).scalar()
            replies = (
                await conn.execute(
                    sa.select(messages.c.reply_to_id, sa.func.count())
                    .where(messages.c.direction == "out")
                    .group_by(messages.c.reply_to_id)
                )
            ).all()
        assert inbound == MESSAGES  # each stored once
        assert len(replies) == MESSAGES and {n for _, n in replies} == {1}  # one reply each
        # The platform: every answer arrived, in order. A worker killed mid-send may send
        # again what it had in flight (Telegram has no idempotency key): those repeats are
        # the same message twice in a row, and no more than one chat's worth per chat.
        sends = telegram.sent("sendMessage")
        by_chat: dict[int, list[str]] = defaultdict(list)
        for call in sends:
            by_chat[int(call.params["chat_id"]) - 10_000].append(call.params["text"])
        repeats = 0
        for chat, texts in by_chat.items():
            # `script` never asks the same thing twice in a row: a repeat is a resend
            unique = [t for n, t in enumerate(texts) if n == 0 or t != texts[n - 1]]
            repeats += len(texts) - len(unique)
            expected = script(chat)[1:]
            answered = unique[1:]  # after the welcome
            assert len(answered) == len(expected), (chat, texts)
            for question, text in zip(expected, answered, strict=True):
                assert text.startswith(ANSWERS[question]), (chat, question, text)  # in order
        assert len(by_chat) == CHATS and len(sends) == MESSAGES + repeats
        assert repeats <= CHATS // 2, f"{repeats} repeated sends"
        print(f"scale-out: {MESSAGES} answered, {repeats} resent after the kill", flush=True)
    finally:
        for process in (*webs, *workers):
            process.stop()
        await engine.dispose()


def _state(telegram: FakeTelegram, workers: list[HubProcess]) -> str:
    tail = "\n".join(w.log.read_text()[-2000:] for w in workers if w.log.exists())
    return f"sent {len(telegram.sent('sendMessage'))} of {MESSAGES}\n{tail}"
