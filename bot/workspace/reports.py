"""A space's figures for a range of days in its time zone, computed in SQL (the REST API's
`/api/v1/reports/summary` and the dashboard's Reports page read the same numbers).

Days are cut at the space's local midnights: the range becomes a small table of days with
their UTC bounds, joined to the rows by `created_at`, so a day around a clock change has
23 or 25 hours and nothing is counted on the wrong day, on SQLite as on PostgreSQL.
Percentiles are read by rank (`ORDER BY ... LIMIT 1 OFFSET k`), which both databases do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import InvalidPayload
from bot.storage.tables import (
    assignments,
    channels,
    conversations,
    flow_runs,
    messages,
    spaces,
    surveys,
    teams,
    users,
)

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

    def days(self) -> list[tuple[str, datetime, datetime]]:
        """Each day with its UTC bounds (local midnight to local midnight)."""
        found = []
        day = self.start
        while day <= self.end:
            after = day + timedelta(days=1)
            found.append((day.isoformat(), self._midnight(day), self._midnight(after)))
            day = after
        return found

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        return self._midnight(self.start), self._midnight(self.end + timedelta(days=1))

    def _midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(), self.tz).astimezone(UTC)


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
    return {
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "timezone": period.tz.key,
        "days": await _per_day(conn, space_id, period),
        "first_response_seconds": await _spread(conn, _first_responses(space_id, lo, hi, sqlite)),
        "resolution_seconds": await _spread(conn, _resolutions(space_id, lo, hi, sqlite)),
        "handovers": await _count(conn, _handed_over(space_id, lo, hi)),
        "bot_only_resolutions": await _count(conn, _bot_only(space_id, lo, hi)),
        "csat": await _csat(conn, space_id, lo, hi),
        "by_channel": await _by_channel(conn, space_id, lo, hi),
        "by_agent": await _by_agent(conn, space_id, lo, hi),
        "by_team": await _by_team(conn, space_id, lo, hi),
    }


async def _per_day(conn: AsyncConnection, space_id: int, period: Period) -> list[dict[str, Any]]:
    days = (
        sa.values(
            sa.column("day", sa.String),
            sa.column("lo", sa.DateTime(timezone=True)),
            sa.column("hi", sa.DateTime(timezone=True)),
            name="days",
        )
        .data(period.days())
        .cte("days")
    )  # a CTE: SQLite names no columns of a derived table
    d = days.c

    def counted(column: Any, *where: Any) -> Any:
        return sa.and_(column >= d.lo, column < d.hi, *where)

    opened = (
        sa.select(d.day, sa.func.count(c.id))
        .select_from(days)
        .join(conversations, counted(c.created_at, c.space_id == space_id))
        .group_by(d.day)
    )
    closed = (
        sa.select(d.day, sa.func.count(c.id))
        .select_from(days)
        .join(conversations, counted(c.closed_at, c.space_id == space_id))
        .group_by(d.day)
    )
    moved = (
        sa.select(d.day, m.direction, sa.func.count(m.id))
        .select_from(days)
        .join(messages, counted(m.created_at, m.space_id == space_id, m.direction != "note"))
        .group_by(d.day, m.direction)
    )
    table = {
        day: {"day": day, "opened": 0, "closed": 0, "in": 0, "out": 0} for day, *_ in period.days()
    }
    for day, n in await conn.execute(opened):
        table[day]["opened"] = n
    for day, n in await conn.execute(closed):
        table[day]["closed"] = n
    for day, direction, n in await conn.execute(moved):
        table[day][direction] = n
    return list(table.values())


def _opened_in(space_id: int, lo: datetime, hi: datetime) -> Any:
    return sa.and_(c.space_id == space_id, c.created_at >= lo, c.created_at < hi)


def _first_responses(space_id: int, lo: datetime, hi: datetime, sqlite: bool) -> Any:
    """Seconds from a conversation's opening to its first message from a person: each
    conversation's first such message found in one grouped pass over the range."""
    first = (
        sa.select(m.conversation_id, sa.func.min(m.created_at).label("at"))
        .where(m.space_id == space_id, m.created_at >= lo)
        .where(m.direction == "out", m.sender_type == "user")
        .group_by(m.conversation_id)
        .subquery()
    )
    return (
        sa.select(_seconds(first.c.at, c.created_at, sqlite).label("value"))
        .join_from(conversations, first, first.c.conversation_id == c.id)
        .where(_opened_in(space_id, lo, hi))
    )


def _resolutions(space_id: int, lo: datetime, hi: datetime, sqlite: bool) -> Any:
    """Seconds from opening to closing, for the conversations closed in the range."""
    return sa.select(_seconds(c.closed_at, c.created_at, sqlite).label("value")).where(
        c.space_id == space_id, c.closed_at >= lo, c.closed_at < hi
    )


def _person_took_part() -> Any:
    wrote = sa.exists().where(
        m.conversation_id == c.id, m.direction == "out", m.sender_type == "user"
    )
    assigned = sa.exists().where(assignments.c.conversation_id == c.id)
    return sa.or_(wrote, assigned, c.handler.in_(("waiting", "agent")))


def _handed_over(space_id: int, lo: datetime, hi: datetime) -> Any:
    return sa.select(sa.func.count()).where(_opened_in(space_id, lo, hi), _person_took_part())


def _bot_only(space_id: int, lo: datetime, hi: datetime) -> Any:
    return sa.select(sa.func.count()).where(
        c.space_id == space_id, c.closed_at >= lo, c.closed_at < hi, ~_person_took_part()
    )


async def _count(conn: AsyncConnection, query: Any) -> int:
    return int((await conn.execute(query)).scalar() or 0)


async def _spread(conn: AsyncConnection, values: Any) -> dict[str, Any]:
    """Count, median and 90th percentile (nearest rank) of a one-column query."""
    inner = values.subquery()
    n = int((await conn.execute(sa.select(sa.func.count()).select_from(inner))).scalar() or 0)
    result: dict[str, Any] = {"count": n, "median": None, "p90": None}
    for name, share in (("median", 0.5), ("p90", 0.9)):
        if n:
            rank = max(0, math.ceil(share * n) - 1)
            value = (
                await conn.execute(
                    sa.select(inner.c.value).order_by(inner.c.value).limit(1).offset(rank)
                )
            ).scalar()
            result[name] = round(float(value), 1) if value is not None else None
    return result


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


async def _by_channel(
    conn: AsyncConnection, space_id: int, lo: datetime, hi: datetime
) -> list[dict[str, Any]]:
    rows = await conn.execute(
        sa.select(channels.c.id, channels.c.name, channels.c.kind, m.direction, sa.func.count(m.id))
        .join(messages, m.channel_id == channels.c.id)
        .where(m.space_id == space_id, m.created_at >= lo, m.created_at < hi)
        .where(m.direction != "note")
        .group_by(channels.c.id, channels.c.name, channels.c.kind, m.direction)
    )
    table: dict[str, dict[str, Any]] = {}
    for channel_id, name, kind, direction, n in rows:
        entry = table.setdefault(
            channel_id, {"channel_id": channel_id, "name": name, "kind": kind, "in": 0, "out": 0}
        )
        entry[direction] = n
    return sorted(table.values(), key=lambda e: (-(e["in"] + e["out"]), e["name"]))


async def _by_agent(
    conn: AsyncConnection, space_id: int, lo: datetime, hi: datetime
) -> list[dict[str, Any]]:
    rows = await conn.execute(
        sa.select(
            users.c.id,
            users.c.name,
            sa.func.count(m.id),
            sa.func.count(sa.distinct(m.conversation_id)),
        )
        .join(messages, m.sender_user_id == users.c.id)
        .where(m.space_id == space_id, m.created_at >= lo, m.created_at < hi)
        .where(m.direction == "out")
        .group_by(users.c.id, users.c.name)
        .order_by(sa.func.count(m.id).desc(), users.c.name)
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
