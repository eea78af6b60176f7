"""The reports' day book (`bot.workspace.report_days`): ended days counted once, the report
the same read from the book as counted live, the book really read, a new time zone
starting it over, two hubs counting at once, and the hub keeping it in the background."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from aiohttp.web import Application

from bot.app import create_app
from bot.keys import DB, DEFAULT_SPACE
from bot.plugins import Plugins
from bot.settings import Settings
from bot.storage.tables import messages, report_books, report_days, spaces
from bot.workspace.report_days import DayBook
from bot.workspace.reports import Period, summary
from tests.bot.workspace.test_reports import LISBON, at, story
from tests.conftest import closed_within, eventually


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A hub that does not work: these tests run the book's rounds themselves."""
    return settings.model_copy(update={"work": False})


PERIOD = Period(date(2026, 3, 20), date(2026, 3, 31), LISBON)
NOON_31 = datetime(2026, 3, 31, 12)  # the hub's clock (UTC): 03-30 has ended in Lisbon


async def report(app: Application, period: Period = PERIOD) -> dict[str, Any]:
    async with app[DB].read() as conn:
        return await summary(conn, app[DEFAULT_SPACE], period, app[DB].is_sqlite)


async def book(app: Application) -> tuple[Any, list[Any]]:
    async with app[DB].read() as conn:
        kept = (await conn.execute(sa.select(report_books))).all()
        r = report_days.c
        days = (
            await conn.execute(
                sa.select(r.day, r.direction, r.messages).order_by(r.day, r.direction)
            )
        ).all()
    return kept, [tuple(d) for d in days]


async def test_ended_days_are_counted_once_and_read_from_the_book(app: Application) -> None:
    await story(app)
    live = await report(app)
    assert await DayBook(app[DB]).tick(NOON_31) == 3  # 03-28, the first message's day, to 03-30
    kept, days = await book(app)
    assert [(k.timezone, k.through) for k in kept] == [("Europe/Lisbon", date(2026, 3, 30))]
    assert days == [  # the note is no message to the contact
        (date(2026, 3, 28), "in", 1),
        (date(2026, 3, 28), "out", 1),
        (date(2026, 3, 29), "in", 2),
        (date(2026, 3, 29), "out", 1),
    ]
    assert await report(app) == live
    assert await DayBook(app[DB]).tick(NOON_31) == 0  # nothing new has ended

    # the book is what the report reads for its days; the day after it is counted live
    async with app[DB].write() as conn:
        await conn.execute(
            report_days.update().where(report_days.c.day == date(2026, 3, 29)).values(messages=7)
        )
        row = (await conn.execute(sa.select(messages).limit(1))).one()._asdict()
        row.update(id=None, created_at=at("2026-03-31", 9), direction="in")
        await conn.execute(
            messages.insert().values({k: v for k, v in row.items() if v is not None})
        )
    days = {d["day"]: d for d in (await report(app))["days"]}
    assert (days["2026-03-29"]["in"], days["2026-03-29"]["out"]) == (7, 7)
    assert days["2026-03-31"]["in"] == 1


async def test_a_new_time_zone_starts_the_book_over(app: Application) -> None:
    await story(app)
    await DayBook(app[DB]).tick(NOON_31)
    async with app[DB].write() as conn:
        await conn.execute(
            spaces.update()
            .where(spaces.c.id == app[DEFAULT_SPACE])
            .values(timezone="America/New_York")
        )
    new_york = Period(PERIOD.start, PERIOD.end, ZoneInfo("America/New_York"))
    live = await report(app, new_york)  # the Lisbon book is not read for New York's days
    by_day = {d["day"]: (d["in"], d["out"]) for d in live["days"]}
    # 23:30 and 00:10 in Lisbon are both evening of the 28th in New York
    assert by_day["2026-03-28"] == (2, 2) and by_day["2026-03-29"] == (1, 0)
    assert await DayBook(app[DB]).tick(NOON_31) == 3  # 03-28 to 03-30 again, cut in New York
    kept, days = await book(app)
    assert [(k.timezone, k.through) for k in kept] == [("America/New_York", date(2026, 3, 30))]
    assert (date(2026, 3, 28), "in", 2) in days
    assert await report(app, new_york) == live


async def test_two_hubs_counting_at_once_count_each_day_once(app: Application) -> None:
    await story(app)
    counted = await asyncio.gather(*(DayBook(app[DB]).tick(NOON_31) for _ in range(3)))
    assert sum(counted) == 3  # each day by one of them
    _, days = await book(app)
    async with app[DB].read() as conn:
        stored = (
            await conn.execute(
                sa.select(sa.func.count()).where(
                    messages.c.direction != "note", messages.c.created_at < at("2026-03-31", 0)
                )
            )
        ).scalar()
    assert sum(n for *_, n in days) == stored == 5


async def test_a_working_hub_keeps_the_book(
    app: Application, settings: Settings, plugins: Plugins, aiohttp_client: Any
) -> None:
    """A hub that works counts the ended days in its background, from its start."""
    await story(app)
    assert (await book(app))[0] == []
    worker = await aiohttp_client(create_app(settings.model_copy(update={"work": True}), plugins))
    try:
        await eventually(lambda: _counted(app), timeout=15)
    finally:
        await closed_within(worker, 15)


async def _counted(app: Application) -> bool:
    kept, days = await book(app)
    return bool(kept) and kept[0].through is not None and bool(days)
