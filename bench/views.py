"""Views over many contacts: first page and count, with the schema's indexes and without.

Builds a SQLite database with N contacts in one space (and N/10 in another, as noise),
custom fields and tags, then runs views through the hub's own query code
(`bot.contacts.find`): median of 5 runs [min-max], in ms. Then drops the secondary
indexes and runs the same queries again, in the same run.

    .venv/bin/python bench/views.py [--contacts 100000 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.contacts import find  # noqa: E402
from bot.filters import Group  # noqa: E402
from bot.storage.db import Database  # noqa: E402
from bot.storage.migrate import upgrade  # noqa: E402

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
    "ix_contacts_space_id",
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


def build(path: Path, n: int) -> None:
    upgrade(f"sqlite+aiosqlite:///{path}")
    rnd = random.Random(7)
    now = datetime.utcnow()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO organizations (id, name) VALUES (1, 'o')")
        db.executemany(
            "INSERT INTO spaces (id, organization_id, name) VALUES (?, 1, ?)",
            [(1, "main"), (2, "other")],
        )
        db.executemany(
            "INSERT INTO field_definitions (id, space_id, key, label, type, options) "
            "VALUES (?, 1, ?, ?, ?, '[]')",
            [(1, "plan", "Plan", "choice"), (2, "seats", "Seats", "number")],
        )
        db.executemany(
            "INSERT INTO tags (id, space_id, name) VALUES (?, 1, ?)", [(1, "vip"), (2, "lisbon")]
        )
        rows, values, tagged = [], [], []
        for i in range(1, n + n // 10 + 1):
            space = 1 if i <= n else 2
            last = now - timedelta(days=rnd.random() * 90)
            rows.append(
                (
                    i,
                    space,
                    f"{rnd.choice(NAMES)} {i}",
                    f"+3519{i:08d}",
                    f"c{i}@example.com",
                    last.isoformat(" "),
                    last.isoformat(" "),
                )
            )
            if space == 1:
                values.append(
                    (i, 1, rnd.choices(["free", "pro", "business"], [80, 10, 10])[0], None)
                )
                values.append((i, 2, None, float(rnd.randint(1, 50))))
                if rnd.random() < 0.01:
                    tagged.append((1, i))
                if rnd.random() < 0.2:
                    tagged.append((2, i))
        db.executemany(
            "INSERT INTO contacts (id, space_id, name, phone, email, created_at, "
            "last_message_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.executemany(
            "INSERT INTO field_values (contact_id, field_id, value_text, value_number) "
            "VALUES (?, ?, ?, ?)",
            values,
        )
        db.executemany("INSERT INTO contact_tags (tag_id, contact_id) VALUES (?, ?)", tagged)
        db.execute("ANALYZE")


async def measure(path: Path) -> dict[str, tuple[list[float], list[float]]]:
    db = Database(f"sqlite+aiosqlite:///{path}")
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


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    for n in args.contacts:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "views.db"
            started = time.perf_counter()
            build(path, n)
            print(
                f"\n{n:,} contacts (+{n // 10:,} in another space), built in "
                f"{time.perf_counter() - started:.0f}s; ms, median [min-max] of 5"
            )
            indexed = asyncio.run(measure(path))
            with sqlite3.connect(path) as db:
                for index in DROPPABLE:
                    db.execute(f"DROP INDEX {index}")
            bare = asyncio.run(measure(path))
            print(
                f"{'view':<24} {'first page':>18} {'no indexes':>20} {'count':>20} "
                f"{'no indexes':>22}"
            )
            for name in VIEWS:
                print(
                    f"{name:<24} {fmt(indexed[name][0]):>18} {fmt(bare[name][0]):>20} "
                    f"{fmt(indexed[name][1]):>20} {fmt(bare[name][1]):>22}"
                )


if __name__ == "__main__":
    main()
