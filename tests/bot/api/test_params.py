"""Every REST route that reads a body answers hostile bodies with a 4xx, stores nothing,
and logs no traceback."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.keys import DB
from bot.storage import tables
from tests.bot.api.test_conversations import auth, people  # noqa: F401

HOSTILE: dict[str, bytes] = {
    "empty": b"",
    "not JSON": b"{nope",
    "not UTF-8": b'{"name": "caf\xe9"}',
    "scalar": b"42",
    "string": b'"text"',
    "array": b"[1, 2, 3]",
    "null": b"null",
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "deep object": b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    "huge number": b'{"name": 1e999999, "id": 123456789012345678901234567890, "user_id": -1}',
    "wrong types": b'{"name": {"a": 1}, "text": [1], "role": 5, "filter": "x", "value": {}}',
    "unknown fields": b'{"zzz": 1, "__proto__": {"admin": true}}',
}
OK = {400, 404, 405, 409, 413, 415, 422}


def _write_routes(app: Application) -> list[tuple[str, str]]:
    routes = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if route.method in ("POST", "PUT", "PATCH") and path.startswith("/api/v1/"):
            routes.append((route.method, re.sub(r"\{[^}]+\}", "1", path)))
    return sorted(set(routes))


async def _rows(app: Application) -> dict[str, int]:
    counts = {}
    async with app[DB].read() as conn:
        for name in ("contacts", "views", "shortcuts", "field_definitions", "tags", "teams"):
            table = getattr(tables, name)
            counts[name] = (
                await conn.execute(sa.select(sa.func.count()).select_from(table))
            ).scalar_one()
    return counts


async def test_hostile_bodies_on_every_write_route_are_4xx_and_store_nothing(
    client: TestClient,
    app: Application,
    people: dict[str, Any],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    routes = _write_routes(app)
    assert len(routes) > 20, routes
    before = await _rows(app)
    headers = auth(people["admin"], **{"Content-Type": "application/json"})
    failures = []
    for method, path in routes:
        for name, raw in HOSTILE.items():
            resp = await client.request(method, path, data=raw, headers=headers)
            if resp.status not in OK:
                failures.append(f"{method} {path} {name}: {resp.status} {await resp.text()}")
            elif resp.status != 405:
                assert resp.content_type == "application/problem+json", (method, path, name)
    assert failures == [], "\n".join(failures)
    assert await _rows(app) == before
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_nul_and_lone_surrogates_in_a_body_are_stored_cleaned(
    client: TestClient,
    people: dict[str, Any],  # noqa: F811
) -> None:
    raw = b'{"name": "Sales\\u0000 \\ud800\\u202e"}'
    made = await client.post("/api/v1/teams", data=raw, headers=auth(people["admin"]))
    assert made.status == 201, await made.text()
    assert (await made.json())["name"] == "Sales \ufffd\u202e"


async def test_unknown_routes_and_methods_answer_problem_documents(
    client: TestClient,
    people: dict[str, Any],  # noqa: F811
) -> None:
    headers = auth(people["agent"])
    missing = await client.get("/api/v1/nothing-here", headers=headers)
    assert missing.status == 404 and missing.content_type == "application/problem+json"
    assert "/api/v1/openapi.json" in (await missing.json())["detail"]
    wrong = await client.delete("/api/v1/conversations", headers=headers)
    assert wrong.status == 405 and wrong.content_type == "application/problem+json"
    assert "GET" in wrong.headers["Allow"] and "use GET" in (await wrong.json())["detail"]
    page = await client.get("/no-such-page")
    assert page.status == 404  # outside the API, aiohttp's own page


async def test_a_nul_in_the_url_is_a_400_on_every_database(
    client: TestClient,
    people: dict[str, Any],  # noqa: F811
) -> None:
    headers = auth(people["agent"])
    for url in ("/api/v1/contacts?q=a%00b", "/api/v1/contacts/1/tags/a%00b", "/webhooks/a%00b"):
        resp = await client.get(url, headers=headers)
        assert resp.status == 400, url
        assert "NUL" in (await resp.json())["detail"]
