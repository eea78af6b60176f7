"""The database handle: engines for reading and writing, and a write path that suits
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager, closing, nullcontext
from typing import Any, TypeVar

from sqlalchemy import event, make_url, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.storage.inline_sqlite import inline_creator

log = logging.getLogger(__name__)

T = TypeVar("T")

CHECKPOINT_EVERY = 1.0  # seconds between WAL checkpoints, at most
BUSY_WAIT = 10.0  # seconds a SQLite write waits for another process's write to end


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer. synchronous=NORMAL: a commit survives a
    # process crash (kill -9); only an OS crash or power cut can lose the last ones.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _writer_pragmas(dbapi_connection: Any, _record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, _record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")  # on the loop's thread: never wait inside SQLite
    # nor checkpoint inside a commit (an fsync on the loop's thread): `Checkpoints` does it
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _glancer_pragmas(dbapi_connection: Any, _record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, _record)
    # on the loop's thread: a WAL reader is never blocked, except during recovery
    dbapi_connection.cursor().execute("PRAGMA busy_timeout=100")


def _begin_immediate(conn: Any) -> None:
    # the write lock is taken at BEGIN: a database busy with another process's write
    # fails here, before any work, so `Database.write` can wait and begin again
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class Checkpoints:
    """Copies the WAL back into the database on a thread, at most once a second.

    SQLite does it by itself inside the commit that fills 1,000 pages of WAL; with the
    writer on the event loop's thread, that commit stalled the loop for the checkpoint's
    fsync (replies waited up to 200 ms behind a broadcast's bookkeeping). A passive
    checkpoint blocks neither readers nor the writer.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._last = 0.0
        self._running: asyncio.Future[None] | None = None

    def after_commit(self) -> None:
        at = time.monotonic()
        if self._running is None and at - self._last >= CHECKPOINT_EVERY:
            self._last = at
            self._running = asyncio.ensure_future(asyncio.to_thread(self._checkpoint))
            self._running.add_done_callback(self._done)

    def _checkpoint(self) -> None:
        with closing(sqlite3.connect(self._path, timeout=BUSY_WAIT)) as conn:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _done(self, future: asyncio.Future[None]) -> None:
        self._running = None
        if not future.cancelled() and future.exception() is not None:
            log.warning("WAL checkpoint failed", exc_info=future.exception())

    async def close(self) -> None:
        if self._running is not None:
            await asyncio.gather(self._running, return_exceptions=True)


class WriterQueue:
    """SQLite's one writer, taken in order of arrival, except that yielding writers take
    it only when nobody else waits for it."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._waiting = 0  # writers that do not yield, waiting for it
        self._idle = asyncio.Event()
        self._idle.set()

    @asynccontextmanager
    async def turn(self, yielding: bool) -> AsyncIterator[None]:
        if yielding:
            while True:
                await self._idle.wait()
                await self._lock.acquire()
                if not self._waiting:
                    break
                self._lock.release()  # someone came meanwhile: after them
        else:
            self._waiting += 1
            self._idle.clear()
            try:
                await self._lock.acquire()
            finally:
                self._waiting -= 1
                if not self._waiting:
                    self._idle.set()
        try:
            yield
        finally:
            self._lock.release()


class Database:
    """Engines plus the rules for writing.

    SQLite has one writer at a time: writers in this process queue (`WriterQueue`),
    and the write connection runs on the event loop's thread (`inline_sqlite`); a write
    of another process is waited for off the loop. Reads use aiosqlite's threads, so a
    long one (a view's count) never blocks the loop.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        # SQLite: enough pooled connections for a busy hub; each one is a thread, and
        # overflow connections (opened and closed per use) cost more than the queries
        pool = {"pool_size": 20} if self.is_sqlite else {"pool_pre_ping": True}
        self.engine: AsyncEngine = create_async_engine(url, **pool)
        self._writer = self.engine
        self._glancer = self.engine
        self._prepared: dict[Hashable, Any] = {}  # statements built once (`prepared`)
        self._write_lock = None
        self._checkpoints: Checkpoints | None = None
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            self._write_lock = WriterQueue()
            path = make_url(url).database
            if path and path != ":memory:":
                self._writer = create_async_engine(
                    url, async_creator=inline_creator(path), pool_size=1, max_overflow=0
                )
                event.listen(self._writer.sync_engine, "connect", _writer_pragmas)
                event.listen(self._writer.sync_engine, "begin", _begin_immediate)
                self._glancer = create_async_engine(
                    url, async_creator=inline_creator(path), pool_size=4, max_overflow=4
                )
                event.listen(self._glancer.sync_engine, "connect", _glancer_pragmas)
                self._checkpoints = Checkpoints(path)

    @property
    def engines(self) -> tuple[AsyncEngine, ...]:
        """Every engine this handle uses (to observe them: statement counts, timings)."""
        return tuple(dict.fromkeys((self.engine, self._writer, self._glancer)))

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    def insert(self, table: Any) -> Any:
        """A dialect insert, so callers can use `on_conflict_do_nothing()`."""
        return (sqlite.insert if self.is_sqlite else postgresql.insert)(table)

    async def insert_ids(
        self, conn: AsyncConnection, table: Any, rows: list[dict[str, Any]]
    ) -> list[int]:
        """Insert `rows` in one statement: their new ids, in the rows' order.

        SQLAlchemy's `sort_by_parameter_order` sends SQLite one INSERT a row (fifty work
        items were fifty statements). SQLite numbers the rows of one INSERT in the order of
        its VALUES, so their ids, sorted, are in that order; PostgreSQL keeps the option,
        which it does in one statement."""
        key = ("insert_ids", table.name)
        statement = self._prepared.get(key)
        if statement is None:
            statement = self._prepared[key] = table.insert().returning(
                table.c.id, sort_by_parameter_order=not self.is_sqlite
            )
        ids = (await conn.execute(statement, rows)).scalars().all()
        return sorted(ids) if self.is_sqlite else list(ids)

    def prepared(self, build: Callable[[Database], T]) -> T:
        """`build(self)`, built once: on the hot path, building a statement and its cache
        key cost more than running it. For statements that depend on the dialect."""
        made = self._prepared.get(build)
        if made is None:
            made = self._prepared[build] = build(self)
        return made  # type: ignore[no-any-return]

    @asynccontextmanager
    async def write(self, yielding: bool = False) -> AsyncIterator[AsyncConnection]:
        """One transaction that commits on exit (and rolls back on error).

        `yielding`: on SQLite, wait while any other writer of this process waits (a
        broadcast's bookkeeping gives way to conversations)."""
        turn = self._write_lock.turn(yielding) if self._write_lock else nullcontext()
        async with turn, self._writer.connect() as conn:
            await self._begin(conn)
            try:
                yield conn
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()
        if self._checkpoints is not None:
            self._checkpoints.after_commit()

    async def _begin(self, conn: AsyncConnection) -> None:
        """Begin, waiting (off the loop) while another process writes to SQLite."""
        deadline = asyncio.get_running_loop().time() + BUSY_WAIT
        delay = 0.005
        while True:
            try:
                await conn.begin()
                return
            except OperationalError as exc:
                if "locked" not in str(exc) or asyncio.get_running_loop().time() > deadline:
                    raise
            await conn.rollback()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def glance(self) -> AsyncIterator[AsyncConnection]:
        """A read of a few rows through an index, on SQLite run on the loop's thread.

        The hot path's reads (the next work item, the next sends) took 7 ms each on
        aiosqlite's threads under load, most of it waiting for the busy loop to take each
        of their four hand-overs; inline they take a tenth of a millisecond. Never for a
        scan or a count: the loop stops while it runs."""
        async with self._glancer.connect() as conn:
            yield conn

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        if self._checkpoints is not None:
            await self._checkpoints.close()
        await self.engine.dispose()
        for engine in {self._writer, self._glancer} - {self.engine}:
            await engine.dispose()
