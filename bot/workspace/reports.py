"""A space's figures for a range of days in its time zone, computed in SQL (the REST API's
`/api/v1/reports/summary` and the dashboard's Reports page read the same numbers).

Days are cut at the space's local midnights (`report_days.by_day`), so a day around a
clock change has 23 or 25 hours and nothing is counted on the wrong day. Messages are
counted per day once the day has ended (`bot.workspace.report_days`) and conversations
carry when people first took part and first wrote, so a year's report reads the year's
conversations and a few thousand counts rather than every message (`bench/dashboard.py`).
Percentiles are the nearest rank: PostgreSQL's `percentile_disc`, SQLite's
`ORDER BY ... LIMIT 1 OFFSET k`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import InvalidPayload
from bot.storage.tables import (
    channels,
    conversations,
    flow_runs,
    messages,
    spaces,
    surveys,
    teams,
    users,
)
from bot.workspace.report_days import Counts, by_day, counts, dates, day_text, midnight

LONGEST = 400  # days in one report
c, m = conversations.c, messages.c


@dataclass(frozen=True)
class Period:
    start: date  # the first day, inclusive
    end: date  # the last day, inclusive
    tz: ZoneInfo

    @classmethod
    def of(cls, start: str | None, end: str | None, tz: str, today: date) -> Period:
        """`start`/`end` as YYYY-MM-DD (default: the 30 days up to `today`)."""
        try:
            last = date.fromisoformat(end) if end else today
            first = date.fromisoformat(start) if start else last - timedelta(days=29)
        except ValueError:
            raise InvalidPayload("dates are YYYY-MM-DD, e.g. 2026-12-01") from None
        if last.year >= 9999:  # its next midnight is past the calendar
            raise InvalidPayload("the range ends too far in the future")
        if first > last:
            raise InvalidPayload("the range starts after it ends")
        if (last - first).days >= LONGEST:
            raise InvalidPayload(f"a report covers at most {LONGEST} days")
        return cls(first, last, ZoneInfo(tz))

    def dates(self) -> list[date]:
        return dates(self.start, self.end)

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        return midnight(self.start, self.tz), midnight(self.end + timedelta(days=1), self.tz)


def today(tz: str) -> date:
    return datetime.now(ZoneInfo(tz)).date()


async def timezone_of(conn: AsyncConnection, space_id: int) -> str:
    return str(
        (await conn.execute(sa.select(spaces.c.timezone).where(spaces.c.id == space_id))).scalar()
        or "UTC"
    )


def _seconds(later: Any, earlier: Any, sqlite: bool) -> Any:
    if sqlite:
        return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0
    return sa.func.extract("epoch", later - earlier)


async def summary(
    conn: AsyncConnection, space_id: int, period: Period, sqlite: bool
) -> dict[str, Any]:
    lo, hi = period.bounds
    if not sqlite:  # sort a year's conversations in memory; compiling the plans costs more
        local = sa.func.set_config  # SET LOCAL: for this report's transaction
        await conn.execute(sa.select(local("work_mem", "32MB", True), local("jit", "off", True)))
    moved = await counts(conn, sqlite, space_id, period.start, period.end, period.tz)
    return {
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "timezone": period.tz.key,
        "days": await _per_day(conn, space_id, period, moved, sqlite),
        "first_response_seconds": await _spread(
            conn, _first_responses(space_id, lo, hi, sqlite), sqlite
        ),
        "resolution_seconds": await _spread(conn, _resolutions(space_id, lo, hi, sqlite), sqlite),
        "handovers": await _count(conn, _handed_over(space_id, lo, hi)),
        "bot_only_resolutions": await _count(conn, _bot_only(space_id, lo, hi)),
        "csat": await _csat(conn, space_id, lo, hi),
        "by_channel": await _by_channel(conn, space_id, moved),
        "by_agent": await _by_agent(conn, space_id, lo, hi),
        "by_team": await _by_team(conn, space_id, lo, hi),
    }


async def _per_day(
    conn: AsyncConnection, space_id: int, period: Period, moved: Counts, sqlite: bool
) -> list[dict[str, Any]]:
    days = period.dates()
    table = {
        day.isoformat(): {"day": day.isoformat(), "opened": 0, "closed": 0, "in": 0, "out": 0}
        for day in days
    }
    for name, at in (("opened", c.created_at), ("closed", c.closed_at)):
        query = by_day(sqlite, at, days, period.tz).where(c.space_id == space_id)
        for day, n in await conn.execute(query):
            table[day_text(day)][name] = n
    for day, _, direction, n in moved:
        table[day][direction] += n
    return list(table.values())


def _opened_in(space_id: int, lo: datetime, hi: datetime) -> Any:
    return sa.and_(c.space_id == space_id, c.created_at >= lo, c.created_at < hi)


def _first_responses(space_id: int, lo: datetime, hi: datetime, sqlite: bool) -> Any:
    """From opening to a person's first message, for the conversations opened in range."""
    return sa.select(_seconds(c.first_reply_at, c.created_at, sqlite).label("value")).where(
        _opened_in(space_id, lo, hi), c.first_reply_at.is_not(None)
    )


def _resolutions(space_id: int, lo: datetime, hi: datetime, sqlite: bool) -> Any:
    """From opening to closing, for the conversations closed in the range."""
    return sa.select(_seconds(c.closed_at, c.created_at, sqlite).label("value")).where(
        _closed_in(space_id, lo, hi)
    )


def _closed_in(space_id: int, lo: datetime, hi: datetime) -> Any:
    return sa.and_(c.space_id == space_id, c.closed_at >= lo, c.closed_at < hi)


def _handed_over(space_id: int, lo: datetime, hi: datetime) -> Any:
    return sa.select(sa.func.count()).where(
        _opened_in(space_id, lo, hi), c.handed_over_at.is_not(None)
    )


def _bot_only(space_id: int, lo: datetime, hi: datetime) -> Any:
    return sa.select(sa.func.count()).where(
        _closed_in(space_id, lo, hi), c.handed_over_at.is_(None)
    )


async def _count(conn: AsyncConnection, query: Any) -> int:
    return int((await conn.execute(query)).scalar() or 0)


async def _spread(conn: AsyncConnection, values: Any, sqlite: bool) -> dict[str, Any]:
    """Count, median and 90th percentile (nearest rank) of a one-column query: PostgreSQL
    sorts once (`percentile_disc` is the nearest rank); SQLite reads the ranks."""
    inner = values.subquery()
    if not sqlite:
        shares = sa.literal([0.5, 0.9], ARRAY(sa.Float))
        n, found = (
            await conn.execute(
                sa.select(
                    sa.func.count(), sa.func.percentile_disc(shares).within_group(inner.c.value)
                )
            )
        ).one()
        return {"count": n, **_rounded(found or (None, None))}
    n = int((await conn.execute(sa.select(sa.func.count()).select_from(inner))).scalar() or 0)
    ranked = []
    for share in (0.5, 0.9):
        query = sa.select(inner.c.value).order_by(inner.c.value)
        offset = max(0, math.ceil(share * n) - 1)
        ranked.append((await conn.execute(query.limit(1).offset(offset))).scalar() if n else None)
    return {"count": n, **_rounded(ranked)}


def _rounded(values: Any) -> dict[str, float | None]:
    median, p90 = (round(float(v), 1) if v is not None else None for v in values)
    return {"median": median, "p90": p90}


async def _csat(conn: AsyncConnection, space_id: int, lo: datetime, hi: datetime) -> dict[str, Any]:
    """The average of the answers to the space's satisfaction survey's first rating (or
    number) question, over its runs finished in the range."""
    settings = (
        await conn.execute(sa.select(spaces.c.settings).where(spaces.c.id == space_id))
    ).scalar() or {}
    name = settings.get("csat_survey")
    row = (
        await conn.execute(
            sa.select(surveys.c.id, surveys.c.definition).where(
                surveys.c.space_id == space_id, surveys.c.name == name
            )
        )
    ).first()
    key = _rating_key(row.definition if row else None)
    if row is None or key is None:
        return {"survey": name, "average": None, "count": 0}
    score = flow_runs.c.answers[key].as_float()
    found = (
        await conn.execute(
            sa.select(sa.func.avg(score), sa.func.count(score)).where(
                flow_runs.c.survey_id == row.id,
                flow_runs.c.finished_at >= lo,
                flow_runs.c.finished_at < hi,
            )
        )
    ).one()
    average = round(float(found[0]), 2) if found[0] is not None else None
    return {"survey": name, "average": average, "count": int(found[1] or 0)}


def _rating_key(definition: Any) -> str | None:
    for step in (definition or {}).get("steps", []):
        if step.get("type") == "question" and step.get("answer") in ("rating", "number"):
            return str(step["id"])
    return None


async def _by_channel(conn: AsyncConnection, space_id: int, moved: Counts) -> list[dict[str, Any]]:
    known = await conn.execute(
        sa.select(channels.c.id, channels.c.name, channels.c.kind).where(
            channels.c.space_id == space_id
        )
    )
    table = {
        channel_id: {"channel_id": channel_id, "name": name, "kind": kind, "in": 0, "out": 0}
        for channel_id, name, kind in known
    }
    for _, channel_id, direction, n in moved:
        if channel_id in table:
            table[channel_id][direction] += n
    used = [e for e in table.values() if e["in"] or e["out"]]
    return sorted(used, key=lambda e: (-(e["in"] + e["out"]), e["name"]))


async def _by_agent(
    conn: AsyncConnection, space_id: int, lo: datetime, hi: datetime
) -> list[dict[str, Any]]:
    rows = await conn.execute(
        sa.select(
            users.c.id,
            users.c.name,
            sa.func.count(),
            sa.func.count(sa.distinct(m.conversation_id)),
        )
        .join(messages, m.sender_user_id == users.c.id)
        .where(m.space_id == space_id, m.created_at >= lo, m.created_at < hi)
        # as written, so that a prepared statement's plan can use ix_messages_people_out
        .where(m.direction == sa.bindparam("out", "out", literal_execute=True))
        .where(m.sender_user_id.is_not(None))
        .group_by(users.c.id, users.c.name)
        .order_by(sa.func.count().desc(), users.c.name)
    )
    return [
        {"user_id": uid, "name": name, "messages_out": n, "conversations": convs}
        for uid, name, n, convs in rows
    ]


async def _by_team(
    conn: AsyncConnection, space_id: int, lo: datetime, hi: datetime
) -> list[dict[str, Any]]:
    rows = await conn.execute(
        sa.select(teams.c.id, teams.c.name, sa.func.count(c.id))
        .join(conversations, c.team_id == teams.c.id)
        .where(_opened_in(space_id, lo, hi))
        .group_by(teams.c.id, teams.c.name)
        .order_by(sa.func.count(c.id).desc(), teams.c.name)
    )
    return [{"team_id": tid, "name": name, "conversations": n} for tid, name, n in rows]
