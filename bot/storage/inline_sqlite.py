"""SQLite on the event loop's own thread, for the write connection.

aiosqlite runs each call in a thread and hands the result back through the event
loop: three or four thread hops per statement, about 530 us through SQLAlchemy where
`sqlite3` itself takes 1.5 us (160 us inline). Writes are small (imports and sends
commit in batches), one at a time (`Database.write` holds a lock), and never wait
for a lock held by another process (`BEGIN IMMEDIATE` with no busy timeout, begun
again after an `asyncio.sleep` by `Database.write`). Reads, which can be long (a
view's count over a million contacts), stay on aiosqlite's threads.

The objects below speak the part of aiosqlite's API that SQLAlchemy's `aiosqlite`
dialect uses, so the dialect, its types and its SQL are unchanged.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any


class _Cursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> _Cursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = ()) -> _Cursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> _Cursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class _RunNow:
    """Stands in for aiosqlite's request queue (the dialect's isolation-level setter)."""

    @staticmethod
    def put_nowait(item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        future.set_result(function())


class InlineConnection:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._connection: sqlite3.Connection | None = conn
        self._tx = _RunNow()

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> _Cursor:
        return _Cursor(self._conn.cursor())

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._conn.create_function(*args, **kw)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()


def inline_creator(path: str) -> Callable[[], Any]:
    """An `async_creator` for `create_async_engine`: a connection on the loop's thread."""

    async def create() -> InlineConnection:
        # autocommit at the driver: `BEGIN IMMEDIATE` is sent by the engine's begin event
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        return InlineConnection(conn)

    return create
