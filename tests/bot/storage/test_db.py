"""SQLite writes on the loop's thread: they commit or roll back whole, and another
process's write is waited for without stopping the event loop.

Covers `bot.storage.inline_sqlite`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from bot.storage import db as db_module
from bot.storage.db import Database, WriterQueue


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    async with database.write() as conn:
        await conn.execute(sa.text("CREATE TABLE t (v INTEGER)"))
    yield database
    await database.close()


async def values(db: Database) -> list[int]:
    async with db.read() as conn:
        return list((await conn.execute(sa.text("SELECT v FROM t ORDER BY v"))).scalars())


def another_process_writes(path: str, seconds: float) -> threading.Thread:
    """Hold SQLite's write lock from another connection (as a CLI command would)."""
    locked = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t VALUES (0)")
        locked.set()
        time.sleep(seconds)
        other.execute("COMMIT")
        other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    locked.wait()
    return thread


async def test_a_failed_write_leaves_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.write() as conn:
            await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
            raise RuntimeError("the handler failed")
    async with db.write() as conn:
        await conn.execute(sa.text("INSERT INTO t VALUES (2)"))
    assert await values(db) == [2]


async def test_another_writer_is_waited_for_and_the_loop_keeps_running(
    db: Database, tmp_path: Path
) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    running = asyncio.create_task(ticker())
    holder = another_process_writes(str(tmp_path / "w.db"), 0.5)
    started = time.perf_counter()
    async with db.write() as conn:
        await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    waited = time.perf_counter() - started
    running.cancel()
    await asyncio.to_thread(holder.join)
    assert waited >= 0.3  # it did wait for the other write...
    assert ticks >= 10  # ...without blocking the event loop meanwhile
    assert await values(db) == [0, 1]


async def test_a_write_that_waits_too_long_fails_and_the_next_one_works(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "BUSY_WAIT", 0.2)
    holder = another_process_writes(str(tmp_path / "w.db"), 0.6)
    with pytest.raises(OperationalError, match="database is locked"):
        async with db.write() as conn:
            await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    await asyncio.to_thread(holder.join)
    async with db.write() as conn:
        await conn.execute(sa.text("INSERT INTO t VALUES (2)"))
    assert await values(db) == [0, 2]


async def test_a_yielding_writer_lets_every_other_waiting_writer_go_first() -> None:
    queue = WriterQueue()
    order: list[str] = []
    first_in = asyncio.Event()
    release_first = asyncio.Event()

    async def writer(name: str, yielding: bool, hold: asyncio.Event | None = None) -> None:
        async with queue.turn(yielding):
            order.append(name)
            if hold is not None:
                first_in.set()
                await hold.wait()

    first = asyncio.create_task(writer("first", False, release_first))
    await first_in.wait()
    broadcast = asyncio.create_task(writer("broadcast", True))  # came before the reply...
    await asyncio.sleep(0)
    reply = asyncio.create_task(writer("reply", False))
    await asyncio.sleep(0)
    release_first.set()
    await asyncio.gather(first, broadcast, reply)
    assert order == ["first", "reply", "broadcast"]  # ...and still let it go first


async def test_a_glance_runs_on_the_loop_s_thread_and_sees_each_commit(db: Database) -> None:
    threads: set[int] = set()

    def thread_id() -> int:
        threads.add(threading.get_ident())
        return 1

    for n in (1, 2):
        async with db.write() as conn:
            await conn.execute(sa.text("INSERT INTO t (v) VALUES (:v)"), {"v": n})
        async with db.glance() as conn:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.create_function("thread_id", 0, thread_id)  # type: ignore[union-attr]
            seen = (await conn.execute(sa.text("SELECT max(v), thread_id() FROM t"))).one()
        assert seen[0] == n  # the last commit, at once
    assert threads == {threading.get_ident()}  # no thread hop: the hot path's reads
    assert len(db.engines) == 3  # reads on threads, the writer and the glances inline
