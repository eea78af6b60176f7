"""Contacts in the dashboard (`dashboard.contacts`): search, views with their counts, a CSV
import followed to its end, export and merge through the API."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from aiohttp import FormData
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import contacts
from tests.dashboard.conftest import csrf_of, rows, space_url

CSV = (
    "name,phone,email,tags\n"
    "Ana Lima,+351910000001,ana@example.com,vip\n"
    "Bruno,+351910000002,,\n"
    "<b>Eve</b>,,eve@example.com,vip\n"
)


async def import_csv(client: TestClient, app: Application, csrf: str, text: str) -> str:
    form = FormData()
    form.add_field("file", text.encode(), filename="people.csv", content_type="text/csv")
    resp = await client.post(
        space_url(app, "contacts/import"), data=form, headers={"X-CSRF-Token": csrf}
    )
    assert resp.status == 200, await resp.text()
    html = await resp.text()
    for _ in range(50):
        if "Import done" in html:
            return html
        await asyncio.sleep(0.1)
        key = html.split("contacts/import/")[1].split('"')[0]
        html = await (await client.get(space_url(app, f"contacts/import/{key}"))).text()
    raise AssertionError(html)


async def test_import_search_views_and_merge(
    client: TestClient, app: Application, agent: int
) -> None:
    page = await client.get(space_url(app, "contacts"))
    assert page.status == 200 and "<title>Contacts" in await page.text()
    csrf = csrf_of(await page.text())
    done = await import_csv(client, app, csrf, CSV)
    assert "3 created" in done

    listed = await (await client.get(space_url(app, "contacts/list?q=Ana"))).text()
    assert "Ana Lima" in listed and "Bruno" not in listed and "1 contact<" in listed
    everyone = await (await client.get(space_url(app, "contacts/list"))).text()
    assert "&lt;b&gt;Eve&lt;/b&gt;" in everyone and "<b>Eve</b>" not in everyone

    vips = {"name": "VIPs", "filter": {"all": [{"field": "tags", "op": "has_tag", "value": "vip"}]}}
    made = await client.post(
        space_url(app, "api/views"), json={**vips, "shared": False}, headers={"X-CSRF-Token": csrf}
    )
    assert made.status == 201
    views_html = await (await client.get(space_url(app, "contacts/views"))).text()
    assert 'data-view="VIPs">2<' in views_html
    view_id = (await made.json())["id"]
    only = await (await client.get(space_url(app, f"contacts/list?view={view_id}"))).text()
    assert "2 contacts" in only and "Bruno" not in only

    exported = await client.get(space_url(app, f"api/contacts.csv?view={view_id}"))
    body = await exported.text()
    assert exported.status == 200 and "Ana Lima" in body and "Bruno" not in body

    ana, bruno = (
        r.id
        for r in await rows(
            app,
            sa.select(contacts.c.id)
            .where(contacts.c.name.in_(["Ana Lima", "Bruno"]))
            .order_by(contacts.c.name),
        )
    )
    merged = await client.post(
        space_url(app, f"api/contacts/{ana}/merge"),
        json={"other_id": bruno},
        headers={"X-CSRF-Token": csrf},
    )
    assert merged.status == 201
    after = await (await client.get(space_url(app, "contacts/list"))).text()
    assert "2 contacts" in after
    merge_id = (await merged.json())["merge_id"]
    undone = await client.post(
        space_url(app, f"api/merges/{merge_id}/undo"), headers={"X-CSRF-Token": csrf}
    )
    assert undone.status == 200
    assert "3 contacts" in await (await client.get(space_url(app, "contacts/list"))).text()


async def test_a_bad_csv_says_why_and_keeps_the_good_rows(
    client: TestClient, app: Application, agent: int
) -> None:
    csrf = csrf_of(await (await client.get(space_url(app, "contacts"))).text())
    done = await import_csv(client, app, csrf, "name,email\nGood,good@example.com\n,\n")
    assert "1 created" in done and "problem" in done
    refused = await import_csv(client, app, csrf, "nickname\nx\n")
    assert "unknown column" in refused
    async with app[DB].read() as conn:
        names = (
            (
                await conn.execute(
                    sa.select(contacts.c.name).where(contacts.c.space_id == app[DEFAULT_SPACE])
                )
            )
            .scalars()
            .all()
        )
    assert names == ["Good"]
