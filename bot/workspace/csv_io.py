"""Contacts in and out as CSV: `id`, built-in columns, custom fields by key, `tags`.

An export can be edited and imported back: a row with an `id` updates that contact.

Import validates every row and keeps the valid ones; each bad row is reported
with its line number and what to fix. Rows are committed in batches.

Every CSV the hub writes goes through `csv_line`, whose `safe_cell` defuses "CSV
injection" (OWASP): contacts choose their names and answers, and a cell starting with
`= + - @`, tab or CR is a formula to a spreadsheet, so it gets a leading `'`. A plain
signed number (`+34 600 123 456`, `-12.5`: digits, spaces, `( ) . , / -`) calls
nothing and is left alone. The importer drops a `'` that precedes one of those
characters (a spreadsheet's text marker, ours or the user's), and the exporter quotes
a value that already starts that way, so export-then-import keeps every value.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import InvalidPayload
from bot.storage.db import Database
from bot.storage.tables import (
    contacts,
    field_definitions,
    field_values,
)
from bot.workspace.contacts import (
    field_defs,
    fields_of_many,
    find,
    shown,
    stored_value,
    tag,
    tags_of_many,
)
from bot.workspace.events import emit
from bot.workspace.filters import Group

BUILT_IN = ("name", "phone", "email", "language")
COLUMNS = frozenset({"id", *BUILT_IN, "tags"})
BATCH = 500
FORMULA_START = frozenset("=+-@\t\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9][0-9 ().,/-]*")


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    errors: list[str] = field(default_factory=list)


async def import_csv(
    db: Database, space_id: int, source: TextIO, progress: Callable[[int], None] = lambda n: None
) -> ImportReport:
    reader = csv.DictReader(source)
    header = [unquoted_cell(h.strip()) for h in reader.fieldnames or []]
    reader.fieldnames = header
    async with db.read() as conn:
        defs = await _definitions(conn, space_id)
    unknown = [h for h in header if h not in COLUMNS and h.removeprefix("fields.") not in defs]
    if unknown:
        raise InvalidPayload(
            f"unknown column(s) {', '.join(unknown)}: use id, {', '.join(BUILT_IN)}, tags, "
            f"or a custom field key ({', '.join(sorted(defs)) or 'none defined yet'})"
        )
    report = ImportReport()
    batch: list[tuple[int, dict[str, str]]] = []
    for row in reader:
        batch.append(
            (
                reader.line_num,
                {k: unquoted_cell((v or "").strip()) for k, v in row.items() if k is not None},
            )
        )
        if len(batch) >= BATCH:
            await _commit(db, space_id, defs, batch, report)
            progress(len(batch))
            batch = []
    if batch:
        await _commit(db, space_id, defs, batch, report)
        progress(len(batch))
    return report


async def _definitions(conn: AsyncConnection, space_id: int) -> dict[str, Any]:
    rows = await conn.execute(
        sa.select(field_definitions).where(field_definitions.c.space_id == space_id)
    )
    return {r.key: r for r in rows}


async def _commit(
    db: Database,
    space_id: int,
    defs: dict[str, Any],
    batch: list[tuple[int, dict[str, str]]],
    report: ImportReport,
) -> None:
    async with db.write() as conn:
        for line, row in batch:
            try:
                values = {
                    key.removeprefix("fields."): stored_value(
                        defs[key.removeprefix("fields.")].type,
                        defs[key.removeprefix("fields.")].options or [],
                        key,
                        value,
                    )
                    for key, value in row.items()
                    if key not in COLUMNS and value
                }
                if not any(row.get(k) for k in ("id", *BUILT_IN)):
                    raise InvalidPayload("a contact needs a name, phone or email")
                contact_id = await _upsert(conn, space_id, row, report)
            except InvalidPayload as exc:
                report.errors.append(f"line {line}: {exc}")
                continue
            for key, typed in values.items():
                field_id = defs[key].id
                await conn.execute(
                    field_values.delete().where(
                        field_values.c.contact_id == contact_id, field_values.c.field_id == field_id
                    )
                )
                await conn.execute(
                    field_values.insert().values(contact_id=contact_id, field_id=field_id, **typed)
                )
            names = [t for t in row.get("tags", "").replace(";", ",").split(",") if t.strip()]
            if names:
                await tag(conn, space_id, contact_id, names)


async def _upsert(
    conn: AsyncConnection, space_id: int, row: dict[str, str], report: ImportReport
) -> int:
    """The contact of the row's `id`, else the same person by email or phone, is updated,
    not duplicated."""
    if raw := row.get("id"):
        wanted = int(raw) if raw.isdigit() and len(raw) < 19 else 0
        found = (
            await conn.execute(
                sa.select(contacts.c.id).where(
                    contacts.c.id == wanted,
                    contacts.c.space_id == space_id,
                    contacts.c.status != "erased",
                )
            )
        ).scalar()
        if found is None:
            raise InvalidPayload(f"no contact {raw} in this space (leave id empty to add one)")
        values = {k: row[k] for k in BUILT_IN if row.get(k)}
        if values:
            await conn.execute(contacts.update().where(contacts.c.id == found).values(**values))
        report.updated += 1
        return int(found)
    match = [contacts.c.email == row["email"]] if row.get("email") else []
    match += [contacts.c.phone == row["phone"]] if row.get("phone") else []
    found = None
    if match:
        found = (
            await conn.execute(
                sa.select(contacts.c.id)
                .where(contacts.c.space_id == space_id)
                .where(sa.or_(*match))
                .limit(1)
            )
        ).scalar()
    values = {k: row[k] for k in BUILT_IN if row.get(k)}
    if found is not None:
        await conn.execute(contacts.update().where(contacts.c.id == found).values(**values))
        report.updated += 1
        return int(found)
    report.created += 1
    made = (
        await conn.execute(
            contacts.insert().values(space_id=space_id, **values).returning(contacts.c.id)
        )
    ).scalar_one()
    await emit(conn, space_id, "contact.created", {"contact": {"id": made, "source": "import"}})
    return int(made)


async def export_csv(db: Database, space_id: int, group: Group | None) -> AsyncIterator[str]:
    """CSV text, page by page (keyset), so a million contacts never sit in memory."""
    async with db.read() as conn:
        keys = sorted(await field_defs(conn, space_id))
    header = ["id", *BUILT_IN, "tags", *keys]
    yield csv_line(header)
    before = None
    while True:
        async with db.read() as conn:
            rows, _ = await find(conn, space_id, group, None, BATCH, before, with_count=False)
            if not rows:
                return
            ids = [r.id for r in rows]
            fields: dict[int, dict[str, str]] = {i: {} for i in ids}
            for contact_id, key, value in await fields_of_many(conn, ids):
                fields[contact_id][key] = shown(value)
            tag_names: dict[int, list[str]] = {i: [] for i in ids}
            for contact_id, name in await tags_of_many(conn, ids):
                tag_names[contact_id].append(name)
        for r in rows:
            yield csv_line(
                [
                    r.id,
                    r.name or "",
                    r.phone or "",
                    r.email or "",
                    r.language or "",
                    ",".join(tag_names[r.id]),
                    *(fields[r.id].get(k, "") for k in keys),
                ]
            )
        before = rows[-1].id


def safe_cell(value: object) -> str:
    """`value` as a cell no spreadsheet runs: a leading `'` before a formula character."""
    text = "" if value is None else str(value)
    if text.lstrip("'")[:1] in FORMULA_START and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def unquoted_cell(text: str) -> str:
    """The value a cell holds: `safe_cell`'s quote (or a spreadsheet user's) removed."""
    if text[:1] == "'" and text[1:].lstrip("'")[:1] in FORMULA_START:
        return text[1:]
    return text


def csv_line(cells: Iterable[object]) -> str:
    """One CSV record, every cell through `safe_cell`: the hub's only CSV writer."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow([safe_cell(c) for c in cells])
    return buffer.getvalue()
