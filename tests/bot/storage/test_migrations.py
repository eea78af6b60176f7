"""The migrations create exactly the schema the code uses, and the unique keys hold.

Covers `bot.storage.tables`, `bot.storage.migrate`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from bot.storage.db import Database
from bot.storage.migrate import upgrade
from bot.storage.tables import metadata


@pytest.fixture
async def db(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    await asyncio.to_thread(upgrade, url)
    database = Database(url)
    yield database
    await database.close()


async def test_migrated_schema_matches_the_tables(db: Database) -> None:
    async with db.read() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
        )
    assert diff == []


async def test_sqlite_runs_in_wal_mode(db: Database) -> None:
    async with db.read() as conn:
        assert (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar() == "wal"


async def test_one_open_conversation_per_identity(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(sa.text("INSERT INTO organizations (name) VALUES ('o')"))
        await conn.execute(sa.text("INSERT INTO spaces (organization_id, name) VALUES (1, 's')"))
        await conn.execute(
            sa.text(
                "INSERT INTO channels (id, space_id, kind, name, settings) "
                "VALUES ('c', 1, 'webchat', 'c', '{}')"
            )
        )
        await conn.execute(sa.text("INSERT INTO contacts (space_id) VALUES (1)"))
        await conn.execute(
            sa.text(
                "INSERT INTO identities (contact_id, channel_id, external_id) VALUES (1, 'c', 'u')"
            )
        )
        insert = sa.text(
            "INSERT INTO conversations (space_id, contact_id, channel_id, identity_id, status) "
            "VALUES (1, 1, 'c', 1, :status)"
        )
        await conn.execute(insert, {"status": "closed"})
        await conn.execute(insert, {"status": "closed"})
        await conn.execute(insert, {"status": "open"})
    with pytest.raises(IntegrityError):
        async with db.write() as conn:
            await conn.execute(insert, {"status": "open"})


async def test_0015_finds_who_took_part_in_the_history(tmp_path: Path) -> None:
    """Conversations from before 0015 get the times the hub now records as it goes: a
    person's first message, the first assignment, or the handler a person holds."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    await asyncio.to_thread(upgrade, url, "0014")
    old = Database(url)
    try:
        async with old.write() as conn:
            for statement in (
                "INSERT INTO organizations (id, name) VALUES (1, 'Acme')",
                "INSERT INTO spaces (id, organization_id, name) VALUES (1, 1, 'Main')",
                "INSERT INTO channels (id, space_id, kind, name, settings)"
                " VALUES ('web', 1, 'webchat', 'Web', '{}')",
                "INSERT INTO users (id, name, email) VALUES (7, 'Bea', 'bea@example.com')",
                "INSERT INTO contacts (id, space_id, name) VALUES (1, 1, 'a'), (2, 1, 'b'),"
                " (3, 1, 'c'), (4, 1, 'd')",
                "INSERT INTO identities (id, contact_id, channel_id, external_id)"
                " VALUES (1, 1, 'web', 'a'), (2, 2, 'web', 'b'), (3, 3, 'web', 'c'),"
                " (4, 4, 'web', 'd')",
                # wrote / assigned / waiting for a person / the bot's alone (unassigned)
                "INSERT INTO conversations (id, space_id, contact_id, channel_id, identity_id,"
                " handler, created_at, last_message_at) VALUES"
                " (1, 1, 1, 'web', 1, 'agent', '2026-01-01 10:00:00', '2026-01-01 10:09:00'),"
                " (2, 1, 2, 'web', 2, 'bot', '2026-01-01 10:00:00', NULL),"
                " (3, 1, 3, 'web', 3, 'waiting', '2026-01-01 10:00:00', '2026-01-01 10:03:00'),"
                " (4, 1, 4, 'web', 4, 'bot', '2026-01-01 10:00:00', NULL)",
                "INSERT INTO messages (space_id, conversation_id, channel_id, direction, parts,"
                " status, sender_type, sender_user_id, created_at) VALUES"
                " (1, 1, 'web', 'out', '[]', 'sent', 'bot', NULL, '2026-01-01 10:01:00'),"
                " (1, 1, 'web', 'note', '[]', 'internal', 'user', 7, '2026-01-01 10:02:00'),"
                " (1, 1, 'web', 'out', '[]', 'sent', 'user', 7, '2026-01-01 10:05:00'),"
                " (1, 1, 'web', 'out', '[]', 'sent', 'user', 7, '2026-01-01 10:09:00')",
                "INSERT INTO assignments (conversation_id, user_id, created_at)"
                " VALUES (2, 7, '2026-01-01 10:04:00'), (4, NULL, '2026-01-01 10:04:00')",
            ):
                await conn.execute(sa.text(statement))
    finally:
        await old.close()
    await asyncio.to_thread(upgrade, url)
    new = Database(url)
    try:
        async with new.read() as conn:
            rows = await conn.execute(
                sa.text("SELECT id, handed_over_at, first_reply_at FROM conversations ORDER BY id")
            )
            found = [
                (i, str(h)[:16] if h else None, str(f)[:16] if f else None) for i, h, f in rows
            ]
    finally:
        await new.close()
    assert found == [
        (1, "2026-01-01 10:05", "2026-01-01 10:05"),
        (2, "2026-01-01 10:04", None),
        (3, "2026-01-01 10:03", None),
        (4, None, None),
    ]
