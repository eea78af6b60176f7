"""Messages per local day, channel and direction, counted once a day has ended, so a
report over a year reads a few thousand rows instead of every message.

A message's `created_at` is when the hub stored it, so a day that ended in the space's
time zone (more than `GRACE` ago: a transaction begun before midnight has committed) no
longer changes. The `DayBook` counts such days in the background into `report_days` and
records in `report_books` the last day counted and the time zone it cut the days in.
Readers take the counted days from there and count the later ones live; a book that has
not run, or was cut in another time zone than the space's now, is not used (slower,
never wrong). A book is advanced by a compare-and-set of `through`, so two hubs counting
at once cannot count a day twice; a new time zone starts the space's book over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import db_datetime, now
from bot.storage.db import Database
from bot.storage.tables import messages, report_books, report_days, spaces

log = logging.getLogger(__name__)

GRACE = timedelta(minutes=10)
EVERY = 600.0  # seconds between rounds
BATCH = 31  # days counted in one transaction
m = messages.c

Counts = list[tuple[str, str, str, int]]  # (day, channel id, direction, messages)


def midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tz).astimezone(UTC)


def dates(first: date, last: date) -> list[date]:
    """From `first` to `last`, both included."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _days_table(days: Iterable[date], tz: ZoneInfo) -> Any:
    """The days with their UTC bounds, as a CTE (SQLite names no columns of a derived
    table); a day around a clock change has 23 or 25 hours."""
    rows = [(d, midnight(d, tz), midnight(d + timedelta(days=1), tz)) for d in days]
    return (
        sa.values(
            sa.column("day", sa.Date),
            sa.column("lo", sa.DateTime(timezone=True)),
            sa.column("hi", sa.DateTime(timezone=True)),
            name="days",
        )
        .data(rows)
        .cte("days")
    )


def by_day(sqlite: bool, at: Any, days: list[date], tz: ZoneInfo, *keys: Any) -> Any:
    """`SELECT day, *keys, count(*)` of `at`'s table's rows whose `at` falls in `days`,
    grouped by the local day and `keys` (callers add their conditions): PostgreSQL reads
    the day off each row in one pass of the range; SQLite, with no time zones, joins the
    table of days."""
    lo, hi = midnight(days[0], tz), midnight(days[-1] + timedelta(days=1), tz)
    if not sqlite:
        day = sa.cast(sa.func.timezone(tz.key, at), sa.Date).label("local_day")
        return sa.select(day, *keys, sa.func.count()).where(at >= lo, at < hi).group_by(day, *keys)
    table = _days_table(days, tz)
    d = table.c
    return (
        sa.select(d.day, *keys, sa.func.count())
        .select_from(table)
        .join(at.table, sa.and_(at >= d.lo, at < d.hi))
        .where(at >= lo, at < hi)
        .group_by(d.day, *keys)
    )


def _counted(sqlite: bool, space_id: int, days: list[date], tz: ZoneInfo) -> Any:
    """The space's messages (notes aside) per day, channel and direction."""
    keys = (m.space_id, m.channel_id, m.direction)
    return by_day(sqlite, m.created_at, days, tz, *keys).where(
        m.space_id == space_id, m.direction != "note"
    )


async def counts(
    conn: AsyncConnection, sqlite: bool, space_id: int, first: date, last: date, tz: ZoneInfo
) -> Counts:
    """Messages per day (ISO), channel and direction from `first` to `last` inclusive: the
    book's days, then the rest counted live."""
    book = (
        await conn.execute(
            sa.select(report_books.c.through).where(
                report_books.c.space_id == space_id, report_books.c.timezone == tz.key
            )
        )
    ).scalar()
    found: Counts = []
    if book is not None and book >= first:
        r = report_days.c
        rows = await conn.execute(
            sa.select(r.day, r.channel_id, r.direction, r.messages).where(
                r.space_id == space_id, r.day >= first, r.day <= min(book, last)
            )
        )
        found = [(day.isoformat(), channel, direction, n) for day, channel, direction, n in rows]
        first = book + timedelta(days=1)
    if first <= last:
        rows = await conn.execute(_counted(sqlite, space_id, dates(first, last), tz))
        found += [(day_text(day), channel, direction, n) for day, _, channel, direction, n in rows]
    return found


def day_text(day: date | str) -> str:
    return day if isinstance(day, str) else day.isoformat()  # SQLite hands back the text


class DayBook:
    """Counts the ended days of every space, in rounds (each hub may run one)."""

    def __init__(self, db: Database, every: float = EVERY) -> None:
        self._db = db
        self._every = every

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("counting the reports' days failed; trying again next round")
            await asyncio.sleep(self._every)

    async def tick(self, at: datetime | None = None) -> int:
        """Count every day that has ended by `at` (default: now); how many were counted."""
        aware = (at or now()).replace(tzinfo=UTC) - GRACE
        b = report_books.c
        async with self._db.read() as conn:
            books = (
                await conn.execute(
                    sa.select(spaces.c.id, spaces.c.timezone, b.timezone.label("cut"), b.through)
                    .outerjoin(report_books, b.space_id == spaces.c.id)
                    .order_by(spaces.c.id)
                )
            ).all()
        counted = 0
        for space_id, zone, cut, through in books:
            tz = ZoneInfo(zone or "UTC")
            last = aware.astimezone(tz).date() - timedelta(days=1)
            if cut != tz.key:  # no book yet, or cut at other midnights: start it over
                if (start := await self._first_day(space_id, tz)) is None:
                    continue  # no message yet: a later round starts the book
                if not await self._advance(space_id, (cut, through), tz, start - timedelta(1), []):
                    continue
                through = start - timedelta(days=1)
            while through < last:
                batch = dates(through + timedelta(1), min(through + timedelta(BATCH), last))
                if not await self._advance(space_id, (tz.key, through), tz, batch[-1], batch):
                    break  # another hub is counting this space
                through = batch[-1]
                counted += len(batch)
        if counted:
            log.info("reports' days counted", extra={"days": counted})
        return counted

    async def _first_day(self, space_id: int, tz: ZoneInfo) -> date | None:
        async with self._db.read() as conn:
            first = db_datetime(
                (
                    await conn.execute(
                        sa.select(sa.func.min(m.created_at)).where(m.space_id == space_id)
                    )
                ).scalar()
            )
        return first.replace(tzinfo=UTC).astimezone(tz).date() if first else None

    async def _advance(
        self,
        space_id: int,
        seen: tuple[str | None, date | None],
        tz: ZoneInfo,
        through: date,
        days: list[date],
    ) -> bool:
        """Count `days` and move the book to `through`, if it is still as `seen` (its time
        zone and last day; no time zone: no book yet). The counting is a read (ended days
        no longer change); the write that keeps it is short (on SQLite the writer runs on
        the event loop)."""
        counted: list[dict[str, Any]] = []
        if days:
            async with self._db.read() as conn:
                rows = await conn.execute(_counted(self._db.is_sqlite, space_id, days, tz))
                counted = [
                    {"day": date.fromisoformat(day_text(day)), "space_id": space_id}
                    | {"channel_id": channel, "direction": direction, "messages": n}
                    for day, _, channel, direction, n in rows
                ]
        b = report_books.c
        cut, last = seen
        async with self._db.write(yielding=True) as conn:  # conversations go first
            if cut is None:
                await conn.execute(
                    self._db.insert(report_books)
                    .values(space_id=space_id, timezone=tz.key)
                    .on_conflict_do_nothing()
                )
            moved = await conn.execute(
                report_books.update()
                .where(b.space_id == space_id, b.timezone == (cut or tz.key))
                .where(b.through.is_not_distinct_from(last))
                .values(timezone=tz.key, through=through)
            )
            if moved.rowcount != 1:
                return False
            if cut != tz.key:  # a new book: the old days were cut at other midnights
                await conn.execute(report_days.delete().where(report_days.c.space_id == space_id))
            if counted:
                await conn.execute(report_days.insert(), counted)
        return True
