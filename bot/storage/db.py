"""The database handle: one async engine, and a write path that suits SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer. synchronous=NORMAL: a commit survives a
    # process crash (kill -9); only an OS crash or power cut can lose the last ones.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Database:
    """Engine plus the rules for writing.

    SQLite has one writer at a time: writers in this process queue on an asyncio
    lock instead of spinning on SQLITE_BUSY; other processes wait on busy_timeout.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        # SQLite: enough pooled connections for a busy hub; each one is a thread, and
        # overflow connections (opened and closed per use) cost more than the queries
        pool = {"pool_size": 20} if self.is_sqlite else {"pool_pre_ping": True}
        self.engine: AsyncEngine = create_async_engine(url, **pool)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    def insert(self, table: Any) -> Any:
        """A dialect insert, so callers can use `on_conflict_do_nothing()`."""
        return (sqlite.insert if self.is_sqlite else postgresql.insert)(table)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One transaction that commits on exit (and rolls back on error)."""
        async with self._write_lock or nullcontext(), self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
