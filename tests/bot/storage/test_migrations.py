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
