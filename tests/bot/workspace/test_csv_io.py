"""CSV import keeps good rows, reports bad ones by line; export streams what a view selects."""

from __future__ import annotations

import csv
import io

import pytest
from aiohttp.web import Application

from bot.errors import InvalidPayload
from bot.keys import DB, DEFAULT_SPACE
from bot.workspace.contacts import create_field
from bot.workspace.csv_io import export_csv, import_csv, safe_cell, unquoted_cell
from bot.workspace.filters import Group

CSV = """name,phone,email,language,tags,plan,seats
Ana Lima,+351911111111,ana@x.pt,pt,"vip,lisbon",pro,3
,,,,vip,,
Rui,+351922222222,rui@x.pt,,,enterprise,1
Eva,+351933333333,,en,lisbon,free,many
Bea,+351944444444,bea@x.pt,,,free,
"""


async def test_import_then_export(app: Application) -> None:
    space = app[DEFAULT_SPACE]
    async with app[DB].write() as conn:
        await create_field(conn, space, "plan", "Plan", "choice", ["free", "pro"])
        await create_field(conn, space, "seats", "Seats", "number", [])
    progress: list[int] = []
    report = await import_csv(app[DB], space, io.StringIO(CSV), progress.append)
    assert (report.created, report.updated) == (2, 0)
    assert report.errors == [
        "line 3: a contact needs a name, phone or email",
        "line 4: field 'plan' is choice: 'enterprise' is not one of free, pro",
        "line 5: field 'seats' is number: 'many' is not a number",
    ]
    assert sum(progress) == 5
    # the same person again (by email) is updated, not duplicated
    again = await import_csv(app[DB], space, io.StringIO("name,email,plan\nAna L.,ana@x.pt,free\n"))
    assert (again.created, again.updated) == (0, 1)

    lines = [line async for line in export_csv(app[DB], space, None)]
    assert lines[0] == "id,name,phone,email,language,tags,plan,seats\r\n"
    assert lines[1:] == [
        "2,Bea,+351944444444,bea@x.pt,,,free,\r\n",
        '1,Ana L.,+351911111111,ana@x.pt,pt,"lisbon,vip",free,3\r\n',
    ]
    vips = Group.model_validate({"all": [{"field": "tags", "op": "has_tag", "value": "vip"}]})
    only = [line async for line in export_csv(app[DB], space, vips)]
    assert len(only) == 2 and only[1].startswith("1,Ana L.")


async def test_an_edited_export_imports_back_onto_the_same_contacts(app: Application) -> None:
    space = app[DEFAULT_SPACE]
    await import_csv(app[DB], space, io.StringIO("name,email\nAna,ana@x.pt\nBea,bea@x.pt\n"))
    exported = "".join([line async for line in export_csv(app[DB], space, None)])
    edited = exported.replace("ana@x.pt", "ana@new.pt").replace("Bea", "Beatriz")
    report = await import_csv(app[DB], space, io.StringIO(edited))
    assert (report.created, report.updated, report.errors) == (0, 2, [])
    again = "".join([line async for line in export_csv(app[DB], space, None)])
    assert again == edited  # the same two contacts, changed: no third
    wrong = await import_csv(app[DB], space, io.StringIO("id,name\n999,Zed\nabc,Yan\n"))
    assert wrong.errors == [
        "line 2: no contact 999 in this space (leave id empty to add one)",
        "line 3: no contact abc in this space (leave id empty to add one)",
    ]


async def test_unknown_columns_are_refused_before_anything_is_stored(app: Application) -> None:
    with pytest.raises(InvalidPayload, match="unknown column"):
        await import_csv(app[DB], app[DEFAULT_SPACE], io.StringIO("name,shoe\nAna,42\n"))


async def test_bulk_tags_by_view_and_streamed_csv(client, app: Application) -> None:
    from bot.api.auth import create_token

    space = app[DEFAULT_SPACE]
    async with app[DB].write() as conn:
        await create_field(conn, space, "plan", "Plan", "choice", ["free", "pro"])
        await create_field(conn, space, "seats", "Seats", "number", [])
        token = await create_token(conn, space, None, "t", "admin")
    await import_csv(app[DB], space, io.StringIO(CSV))
    headers = {"Authorization": f"Bearer {token}"}
    made = await client.post(
        "/api/v1/views",
        headers=headers,
        json={
            "name": "free",
            "filter": {"all": [{"field": "fields.plan", "op": "is", "value": "free"}]},
        },
    )
    view = (await made.json())["id"]
    resp = await client.post(
        "/api/v1/tags/bulk", headers=headers, json={"tags": ["promo"], "view_id": view}
    )
    assert (await resp.json())["contacts"] == 1
    both = await client.post(
        "/api/v1/tags/bulk",
        headers=headers,
        json={"tags": ["promo"], "view_id": view, "contact_ids": [1]},
    )
    assert both.status == 400
    csv_resp = await client.get("/api/v1/contacts.csv", headers=headers, params={"view": str(view)})
    assert csv_resp.headers["Content-Type"].startswith("text/csv")
    text = await csv_resp.text()
    assert text.splitlines() == [
        "id,name,phone,email,language,tags,plan,seats",
        "2,Bea,+351944444444,bea@x.pt,,promo,free,",
    ]


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (
            '=HYPERLINK("http://evil.example","click")',
            '\'=HYPERLINK("http://evil.example","click")',
        ),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("'=1+1", "''=1+1"),  # a value that already looks escaped keeps its own quote
        # phone numbers and signed numbers call nothing: kept as they are
        ("+34 600 123 456", "+34 600 123 456"),
        ("+1 (555) 010-9999", "+1 (555) 010-9999"),
        ("-12.5", "-12.5"),
        ("Ana = Bea", "Ana = Bea"),
        ("", ""),
        (None, ""),
        (3, "3"),
    ],
)
def test_a_cell_that_starts_a_formula_is_quoted_and_reads_back(value: object, cell: str) -> None:
    assert safe_cell(value) == cell
    assert unquoted_cell(cell) == ("" if value is None else str(value))


def test_a_spreadsheet_text_marker_before_a_formula_character_is_dropped_on_import() -> None:
    assert unquoted_cell("'+34 600 123 456") == "+34 600 123 456"
    assert unquoted_cell("'tis") == "'tis"  # an apostrophe that escapes nothing stays


async def test_hostile_cells_export_inert_and_round_trip_unchanged(app: Application) -> None:
    """Contacts name themselves; those names and field values must not run in a spreadsheet."""
    space = app[DEFAULT_SPACE]
    async with app[DB].write() as conn:
        await create_field(conn, space, "note", "Note", "text", [])
    rows = [
        ['=HYPERLINK("http://evil.example","x")', "+34 600 123 456", "a@x.es", "", "", "@SUM(A1)"],
        ["-cmd|' /C calc'!A0", "", "b@x.es", "", "=bad,vip", "+1+cmd|' /C calc'!A0"],
    ]
    source = io.StringIO()
    csv.writer(source).writerows([["name", "phone", "email", "language", "tags", "note"], *rows])
    report = await import_csv(app[DB], space, io.StringIO(source.getvalue()))
    assert report.errors == [] and report.created == 2

    exported = "".join([line async for line in export_csv(app[DB], space, None)])
    cells = list(csv.reader(io.StringIO(exported)))
    dangerous = [c for row in cells for c in row if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert dangerous == ["+34 600 123 456"]  # the phone number, which calls nothing
    assert ["'-cmd|' /C calc'!A0", "", "b@x.es", "", "'=bad,vip", "'+1+cmd|' /C calc'!A0"] in [
        row[1:] for row in cells
    ]

    again = await import_csv(app[DB], space, io.StringIO(exported))
    assert again.errors == [] and (again.created, again.updated) == (0, 2)
    assert "".join([line async for line in export_csv(app[DB], space, None)]) == exported
    tags_of_b = [r for r in csv.DictReader(io.StringIO(exported)) if r["email"] == "b@x.es"]
    assert tags_of_b[0]["tags"] == "'=bad,vip"
