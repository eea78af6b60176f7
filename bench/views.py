"""Views over many contacts: first page and count, with the schema's indexes and without.

Builds a SQLite database (or, with --postgres, a throwaway PostgreSQL cluster) with
N contacts in one space (and N/10 in another, as noise), custom fields and tags,
then runs views through the hub's own query code
(`bot.workspace.contacts.find`): median of 5 runs [min-max], in ms. Then drops the secondary
indexes and runs the same queries again, in the same run.

    .venv/bin/python bench/views.py [--contacts 100000 1000000] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bot.storage.db import Database  # noqa: E402
from bot.storage.migrate import upgrade  # noqa: E402
from bot.workspace.contacts import find  # noqa: E402
from bot.workspace.filters import Group  # noqa: E402

VIEWS: dict[str, dict[str, Any]] = {
    "all contacts": {"all": []},
    "tag vip (1%)": {"all": [{"field": "tags", "op": "has_tag", "value": "vip"}]},
    "plan=pro and active 7d": {
        "all": [
            {"field": "fields.plan", "op": "is", "value": "pro"},
            {"field": "last_message_at", "op": "within_last", "value": "7d"},
        ]
    },
    "seats > 45 (10%)": {"all": [{"field": "fields.seats", "op": "gt", "value": 45}]},
    "name starts with 'Ana'": {"all": [{"field": "name", "op": "starts_with", "value": "Ana"}]},
}
DROPPABLE = [
    "ix_contacts_space_listed",
    "ix_contacts_space_last_message",
    "ix_contacts_space_created",
    "ix_contacts_space_name",
    "ix_contacts_space_phone",
    "ix_contacts_space_email",
    "ix_field_values_text",
    "ix_field_values_number",
    "ix_field_values_date",
    "ix_contact_tags_contact",
]
NAMES = ["Ana", "Bruno", "Carla", "Diego", "Eva", "Fabio", "Gina", "Hugo", "Ines", "Joao"]


@dataclass
class Data:
    contacts: list[tuple[Any, ...]]
    values: list[tuple[Any, ...]]
    tagged: list[tuple[int, int]]


def generate(n: int) -> Data:
    """N contacts in space 1 (plan, seats, 1% vip, 20% lisbon) and N/10 in space 2."""
    rnd = random.Random(7)
    now = datetime.now(UTC).replace(tzinfo=None)
    data = Data([], [], [])
    for i in range(1, n + n // 10 + 1):
        space = 1 if i <= n else 2
        last = now - timedelta(days=rnd.random() * 90)
        name = f"{rnd.choice(NAMES)} {i}"
        data.contacts.append((i, space, name, f"+3519{i:08d}", f"c{i}@example.com", last, last))
        if space == 1:
            plan = rnd.choices(["free", "pro", "business"], [80, 10, 10])[0]
            data.values.append((i, 1, plan, None))
            data.values.append((i, 2, None, float(rnd.randint(1, 50))))
            if rnd.random() < 0.01:
                data.tagged.append((1, i))
            if rnd.random() < 0.2:
                data.tagged.append((2, i))
    return data


SETUP = [
    "INSERT INTO organizations (id, name) VALUES (1, 'o')",
    "INSERT INTO spaces (id, organization_id, name) VALUES (1, 1, 'main'), (2, 1, 'other')",
    "INSERT INTO field_definitions (id, space_id, key, label, type, options) VALUES "
    "(1, 1, 'plan', 'Plan', 'choice', '[]'), (2, 1, 'seats', 'Seats', 'number', '[]')",
    "INSERT INTO tags (id, space_id, name) VALUES (1, 1, 'vip'), (2, 1, 'lisbon')",
]
CONTACT_COLUMNS = ["id", "space_id", "name", "phone", "email", "created_at", "last_message_at"]
VALUE_COLUMNS = ["contact_id", "field_id", "value_text", "value_number"]


def build_sqlite(path: Path, data: Data) -> str:
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    with sqlite3.connect(path) as db:
        for statement in SETUP:
            db.execute(statement)
        db.executemany(
            f"INSERT INTO contacts ({', '.join(CONTACT_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(*c[:5], c[5].isoformat(" "), c[6].isoformat(" ")) for c in data.contacts],
        )
        db.executemany(
            f"INSERT INTO field_values ({', '.join(VALUE_COLUMNS)}) VALUES (?, ?, ?, ?)",
            data.values,
        )
        db.executemany("INSERT INTO contact_tags (tag_id, contact_id) VALUES (?, ?)", data.tagged)
        db.execute("ANALYZE")
    return url


async def build_postgres(server: Any, name: str, data: Data) -> str:
    import asyncpg

    server.sql(f"CREATE DATABASE {name}")
    url = f"{server.url}/{name}"
    await asyncio.to_thread(upgrade, url)
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{server.port}/{name}")
    try:
        for statement in SETUP:
            await conn.execute(statement)
        await conn.copy_records_to_table("contacts", records=data.contacts, columns=CONTACT_COLUMNS)
        await conn.copy_records_to_table("field_values", records=data.values, columns=VALUE_COLUMNS)
        await conn.copy_records_to_table(
            "contact_tags", records=data.tagged, columns=["tag_id", "contact_id"]
        )
        # as autovacuum would by the time anyone looks: index-only scans need the
        # visibility map, and the planner its statistics
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return url


async def measure(url: str) -> dict[str, tuple[list[float], list[float]]]:
    db = Database(url)
    results = {}
    try:
        for name, view in VIEWS.items():
            group = Group.model_validate(view)
            page, count = [], []
            for _ in range(5):
                async with db.read() as conn:
                    started = time.perf_counter()
                    await find(conn, 1, group, None, 50, None, with_count=False)
                    page.append((time.perf_counter() - started) * 1000)
                    started = time.perf_counter()
                    await find(conn, 1, group, None, 1, None, with_count=True)
                    count.append((time.perf_counter() - started) * 1000)
            results[name] = (page, count)
    finally:
        await db.close()
    return results


async def drop_indexes(url: str) -> None:
    db = Database(url)
    try:
        async with db.write() as conn:
            for index in DROPPABLE:
                await conn.execute(sa.text(f"DROP INDEX {index}"))
    finally:
        await db.close()


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"


async def main(args: argparse.Namespace) -> None:
    postgres = None
    if args.postgres:
        from tests.servers import Postgres

        if missing := Postgres.available():
            sys.exit(f"--postgres: {missing}")
        postgres = Postgres()
        postgres.start()
    figures: dict[str, float] = {}
    try:
        for n in args.contacts:
            with tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                data = generate(n)
                if postgres is not None:
                    url = await build_postgres(postgres, f"views{n}", data)
                else:
                    url = await asyncio.to_thread(build_sqlite, Path(tmp) / "views.db", data)
                del data
                print(
                    f"\n{'PostgreSQL' if postgres else 'SQLite'}: {n:,} contacts "
                    f"(+{n // 10:,} in another space), built in "
                    f"{time.perf_counter() - started:.0f}s; ms, median [min-max] of 5"
                )
                indexed = await measure(url)
                await drop_indexes(url)
                bare = await measure(url)
            print(
                f"{'view':<24} {'first page':>18} {'no indexes':>20} {'count':>20} "
                f"{'no indexes':>22}"
            )
            for name in VIEWS:
                print(
                    f"{name:<24} {fmt(indexed[name][0]):>18} {fmt(bare[name][0]):>20} "
                    f"{fmt(indexed[name][1]):>20} {fmt(bare[name][1]):>22}"
                )
            figures[f"first_page_ms_max_{n}"] = round(
                max(statistics.median(indexed[name][0]) for name in VIEWS), 2
            )
    finally:
        if postgres is not None:
            postgres.stop()
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--postgres", action="store_true", help="on a throwaway PostgreSQL instead of SQLite"
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    asyncio.run(main(parser.parse_args()))
