"""The hub's one clock: naive UTC, as the database columns hold it.

Both databases store `DateTime(timezone=True)` columns, but SQLite gives back naive
values and PostgreSQL aware ones, and an aggregate (`MIN`, `MAX`) comes back from
SQLite as text: `db_datetime` makes each of them comparable with `now()`.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def db_datetime(value: datetime | str | None) -> datetime | None:
    """SQLite hands back an aggregate's datetime as text; PostgreSQL as an aware datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None) if value is not None else None


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with its offset (the clock's naive values are UTC)."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
