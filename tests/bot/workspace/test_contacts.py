"""Custom fields, tags and the filter language, over a real database, through the API.

Covers `bot.workspace.merge`, `bot.api.views`, `bot.api.fields`.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.api.auth import create_token
from bot.clock import now
from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import contacts, identities, spaces
from bot.workspace.bootstrap import SpaceCreated, add_admin, create_space
from bot.workspace.contacts import shown
from tests.conftest import add_channel


async def seed(app: Application, space_id: int, rows: list[dict[str, Any]]) -> list[int]:
    async with app[DB].write() as conn:
        return [
            (
                await conn.execute(
                    contacts.insert().values(space_id=space_id, **row).returning(contacts.c.id)
                )
            ).scalar_one()
            for row in rows
        ]


@pytest.fixture
async def api(client: TestClient, app: Application) -> Any:
    async with app[DB].write() as conn:
        token = await create_token(conn, app[DEFAULT_SPACE], None, "t", "admin")

    class Api:
        headers = {"Authorization": f"Bearer {token}"}

        async def get(self, path: str, **params: str) -> Any:
            resp = await client.get(path, params=params, headers=self.headers)
            return resp.status, await resp.json()

        async def send(self, method: str, path: str, body: Any) -> Any:
            resp = await client.request(method, path, json=body, headers=self.headers)
            return resp.status, (await resp.json() if resp.status != 204 else None)

    return Api()


@pytest.fixture
async def people(app: Application, api: Any) -> dict[str, int]:
    old = now() - timedelta(days=30)
    ids = await seed(
        app,
        app[DEFAULT_SPACE],
        [
            {
                "name": "Ana Lima",
                "phone": "+351911",
                "email": "ana@x.pt",
                "language": "pt",
                "last_message_at": now(),
            },
            {"name": "Bruno", "phone": "+351922", "language": "pt", "last_message_at": old},
            {"name": "Carla 100%", "email": "carla@y.com", "language": "en"},
        ],
    )
    people = dict(zip(["ana", "bruno", "carla"], ids, strict=True))
    for key, type_, options in (
        ("plan", "choice", ["free", "pro"]),
        ("seats", "number", []),
        ("renewal", "date", []),
        ("vip", "boolean", []),
    ):
        status, _ = await api.send(
            "POST", "/api/v1/fields", {"key": key, "type": type_, "options": options}
        )
        assert status == 201
    for who, plan, seats, renewal in (
        ("ana", "pro", 12, "2026-12-01"),
        ("bruno", "free", 1, "2026-06-01"),
    ):
        for key, value in (("plan", plan), ("seats", seats), ("renewal", renewal)):
            status, body = await api.send(
                "PUT", f"/api/v1/contacts/{people[who]}/fields/{key}", {"value": value}
            )
            assert status == 200, body
    await api.send("POST", f"/api/v1/contacts/{people['ana']}/tags", {"tags": ["vip", "lisbon"]})
    await api.send("POST", f"/api/v1/contacts/{people['carla']}/tags", {"tags": ["lisbon"]})
    return people


async def names(api: Any, group: dict[str, Any]) -> list[str]:
    status, body = await api.get("/api/v1/contacts", filter=json.dumps(group), count="1")
    assert status == 200, body
    assert body["count"] == len(body["items"])
    return sorted(c["name"] for c in body["items"])


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"field": "fields.plan", "op": "is", "value": "pro"}, ["Ana Lima"]),
        ({"field": "fields.plan", "op": "is_not", "value": "pro"}, ["Bruno", "Carla 100%"]),
        ({"field": "fields.plan", "op": "is_not_set"}, ["Carla 100%"]),
        ({"field": "fields.seats", "op": "gt", "value": 5}, ["Ana Lima"]),
        ({"field": "fields.seats", "op": "between", "value": [0, 2]}, ["Bruno"]),
        ({"field": "fields.renewal", "op": "before", "value": "2026-07-01"}, ["Bruno"]),
        ({"field": "tags", "op": "has_tag", "value": "vip"}, ["Ana Lima"]),
        ({"field": "tags", "op": "has_tag", "value": ["vip", "lisbon"]}, ["Ana Lima"]),
        (
            {"field": "tags", "op": "has_any_tag", "value": ["vip", "lisbon"]},
            ["Ana Lima", "Carla 100%"],
        ),
        ({"field": "tags", "op": "has_no_tag", "value": "lisbon"}, ["Bruno"]),
        ({"field": "name", "op": "contains", "value": "100%"}, ["Carla 100%"]),
        ({"field": "name", "op": "starts_with", "value": "Br"}, ["Bruno"]),
        ({"field": "email", "op": "is_set"}, ["Ana Lima", "Carla 100%"]),
        ({"field": "language", "op": "is_not", "value": "pt"}, ["Carla 100%"]),
        ({"field": "last_message_at", "op": "within_last", "value": "7d"}, ["Ana Lima"]),
    ],
)
async def test_each_operator(
    api: Any, people: dict[str, int], condition: Any, expected: list[str]
) -> None:
    assert await names(api, {"all": [condition]}) == expected


async def test_groups_nest(api: Any, people: dict[str, int]) -> None:
    group = {
        "any": [
            {"field": "fields.plan", "op": "is", "value": "free"},
            {
                "all": [
                    {"field": "tags", "op": "has_tag", "value": "lisbon"},
                    {"field": "language", "op": "is", "value": "en"},
                ]
            },
        ]
    }
    assert await names(api, group) == ["Bruno", "Carla 100%"]


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ({"all": [{"field": "shoe_size", "op": "is", "value": 1}]}, "unknown field"),
        ({"all": [{"field": "fields.nope", "op": "is", "value": 1}]}, "unknown custom field"),
        ({"all": [{"field": "fields.seats", "op": "contains", "value": 1}]}, "number field"),
        ({"all": [{"field": "fields.seats", "op": "gt", "value": "many"}]}, "not a number"),
        ({"all": [{"field": "created_at", "op": "within_last", "value": "soon"}]}, "duration"),
        ({"all": [], "any": []}, "exactly one"),
    ],
)
async def test_bad_filters_say_what_is_wrong(
    api: Any, people: dict[str, int], group: Any, message: str
) -> None:
    status, body = await api.get("/api/v1/contacts", filter=json.dumps(group))
    assert status == 400 and message in body["detail"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("plan", "enterprise", "one of free, pro"),
        ("seats", "many", "a number"),
        ("renewal", "31/12/2026", "a date"),
        ("vip", "yes", "true or false"),
    ],
)
async def test_field_values_are_validated(
    api: Any, people: dict[str, int], key: str, value: Any, message: str
) -> None:
    status, body = await api.send(
        "PUT", f"/api/v1/contacts/{people['carla']}/fields/{key}", {"value": value}
    )
    assert status == 400 and message in body["detail"]


async def test_views_save_and_run_and_search(api: Any, people: dict[str, int]) -> None:
    status, view = await api.send(
        "POST",
        "/api/v1/views",
        {"name": "VIPs", "filter": {"all": [{"field": "tags", "op": "has_tag", "value": "vip"}]}},
    )
    assert status == 201
    status, listed = await api.get("/api/v1/views")
    assert [v["name"] for v in listed["items"]] == ["VIPs"]
    status, page = await api.get(f"/api/v1/views/{view['id']}/contacts")
    assert [c["name"] for c in page["items"]] == ["Ana Lima"]
    status, refused = await api.send(
        "POST",
        "/api/v1/views",
        {"name": "x", "filter": {"all": [{"field": "fields.nope", "op": "is_set"}]}},
    )
    assert status == 400 and "unknown custom field" in refused["detail"]
    status, found = await api.get("/api/v1/contacts", q="+35192")
    assert [c["name"] for c in found["items"]] == ["Bruno"]
    # keyset pagination, newest first
    status, first = await api.get("/api/v1/contacts", limit="2")
    status, second = await api.get("/api/v1/contacts", limit="2", before=str(first["next_before"]))
    assert [c["name"] for c in first["items"] + second["items"]] == [
        "Carla 100%",
        "Bruno",
        "Ana Lima",
    ]
    status, _ = await api.send("DELETE", f"/api/v1/contacts/{people['ana']}/tags/vip", None)
    assert status == 204
    status, page = await api.get(f"/api/v1/views/{view['id']}/contacts")
    assert page["items"] == []


async def test_another_spaces_contacts_never_match(
    app: Application, api: Any, people: dict[str, int]
) -> None:
    async with app[DB].write() as conn:
        other = await create_space(conn, "Other", "Other", default=False, webchat=False)
    await add_channel(app, "echo", other.space_id)
    (stranger,) = await seed(app, other.space_id, [{"name": "Ana Outsider"}])
    assert "Ana Outsider" not in await names(
        api, {"all": [{"field": "name", "op": "starts_with", "value": "Ana"}]}
    )
    status, _ = await api.send("PUT", f"/api/v1/contacts/{stranger}/fields/plan", {"value": "pro"})
    assert status == 404
    status, _ = await api.send("POST", f"/api/v1/contacts/{stranger}/tags", {"tags": ["x"]})
    assert status == 404
    async with app[DB].read() as conn:
        assert (
            await conn.execute(sa.select(sa.func.count()).select_from(contacts))
        ).scalar_one() == 4


async def test_merge_moves_everything_and_undo_puts_it_back(
    app: Application, api: Any, people: dict[str, int]
) -> None:
    ana, bruno = people["ana"], people["bruno"]
    await add_channel(app, "echo")
    async with app[DB].write() as conn:
        await conn.execute(
            identities.insert().values(
                contact_id=bruno, channel_id="echo-test-0", external_id="b-1"
            )
        )
    status, merged = await api.send("POST", f"/api/v1/contacts/{ana}/merge", {"other_id": bruno})
    assert status == 201
    # Bruno is gone from lists; Ana keeps her own plan and gains Bruno's identity
    assert "Bruno" not in await names(api, {"all": []})
    status, contact = await api.get(f"/api/v1/contacts/{ana}")
    assert contact["identities"] == [{"channel_id": "echo-test-0", "external_id": "b-1"}]
    assert await names(api, {"all": [{"field": "fields.plan", "op": "is", "value": "pro"}]}) == [
        "Ana Lima"
    ]
    status, _ = await api.send("POST", f"/api/v1/contacts/{ana}/merge", {"other_id": bruno})
    assert status == 404  # already merged

    status, _ = await api.send("POST", f"/api/v1/merges/{merged['merge_id']}/undo", {})
    assert status == 200
    assert "Bruno" in await names(api, {"all": []})
    status, contact = await api.get(f"/api/v1/contacts/{bruno}")
    assert contact["identities"] == [{"channel_id": "echo-test-0", "external_id": "b-1"}]
    assert await names(api, {"all": [{"field": "fields.plan", "op": "is", "value": "free"}]}) == [
        "Bruno"
    ]
    status, twice = await api.send("POST", f"/api/v1/merges/{merged['merge_id']}/undo", {})
    assert status == 400 and "already undone" in twice["detail"]


async def test_fields_views_and_shortcuts_change_and_go(
    api: Any, app: Application, people: dict[str, int]
) -> None:
    tier = {"key": "tier", "type": "choice", "options": ["a", "b"]}
    status, field = await api.send("POST", "/api/v1/fields", tier)
    assert status == 201 and field["label"] == "tier"
    await api.send("PUT", f"/api/v1/contacts/{people['ana']}/fields/tier", {"value": "b"})
    url = f"/api/v1/fields/{field['id']}"
    status, body = await api.send("PATCH", url, {"options": ["a"]})
    assert status == 400 and "'b'" in body["detail"]  # Ana holds it
    status, body = await api.send("PATCH", url, {"label": "Tier", "options": ["a", "b", "c"]})
    assert body["label"] == "Tier" and body["options"] == ["a", "b", "c"]

    status, view = await api.send(
        "POST",
        "/api/v1/views",
        {"name": "B", "filter": {"all": [{"field": "fields.tier", "op": "is", "value": "b"}]}},
    )
    status, page = await api.get(f"/api/v1/views/{view['id']}/contacts")
    assert [c["id"] for c in page["items"]] == [people["ana"]]
    status, body = await api.send(
        "PATCH",
        f"/api/v1/views/{view['id']}",
        {"filter": {"all": [{"field": "fields.nope", "op": "is_set"}]}},
    )
    assert status == 400
    status, body = await api.send("PATCH", f"/api/v1/views/{view['id']}", {"name": "Tier B"})
    assert status == 200
    views = (await api.get("/api/v1/views"))[1]["items"]
    assert [v["name"] for v in views] == ["Tier B"]

    status, shortcut = await api.send(
        "POST", "/api/v1/shortcuts", {"name": "hi", "text": "Hi {{contact.first_name}}"}
    )
    sc = f"/api/v1/shortcuts/{shortcut['id']}"
    assert (await api.send("PATCH", sc, {"text": "{{contact.fields.nope}}"}))[0] == 400
    assert (await api.send("PATCH", sc, {"text": "Your tier: {{contact.fields.tier}}"}))[0] == 200
    status, rendered = await api.get(f"{sc}/render", contact_id=str(people["ana"]))
    assert rendered["parts"][0]["text"] == "Your tier: b"

    # deleting the field takes its values with it; the view that used it now says so
    assert (await api.send("DELETE", url, None))[0] == 204
    status, body = await api.get(f"/api/v1/views/{view['id']}/contacts")
    assert status == 400 and "tier" in body["detail"]
    for path in (f"/api/v1/views/{view['id']}", sc):
        assert (await api.send("DELETE", path, None))[0] == 204
        assert (await api.send("DELETE", path, None))[0] == 404


async def test_personal_views_belong_to_their_owner(client: TestClient, app: Application) -> None:
    async with app[DB].write() as conn:
        space = app[DEFAULT_SPACE]
        org = (
            await conn.execute(sa.select(spaces.c.organization_id).where(spaces.c.id == space))
        ).scalar_one()
        ana = await add_admin(conn, SpaceCreated(org, space, None), "Ana", "ana@example.com")
        bo = await add_admin(conn, SpaceCreated(org, space, None), "Bo", "bo@example.com")
        agent_ana = {
            "Authorization": f"Bearer {await create_token(conn, space, ana, 'a', 'agent')}"
        }
        agent_bo = {"Authorization": f"Bearer {await create_token(conn, space, bo, 'b', 'agent')}"}
    mine = {"name": "mine", "filter": {"all": []}, "shared": False}
    made = await (await client.post("/api/v1/views", json=mine, headers=agent_ana)).json()
    url = f"/api/v1/views/{made['id']}"
    assert (await client.patch(url, json={"name": "x"}, headers=agent_bo)).status == 404
    assert (await client.patch(url, json={"name": "renamed"}, headers=agent_ana)).status == 200
    shared = await client.post("/api/v1/views", json={**mine, "shared": True}, headers=agent_ana)
    assert shared.status == 403  # agents keep views to themselves
    assert (await client.delete(url, headers=agent_bo)).status == 404
    assert (await client.delete(url, headers=agent_ana)).status == 204


async def test_tags_are_listed_with_their_counts(api: Any, people: dict[str, int]) -> None:
    await api.send("POST", f"/api/v1/contacts/{people['bruno']}/tags", {"tags": ["vip", "late"]})
    await api.send("DELETE", f"/api/v1/contacts/{people['bruno']}/tags/late", None)
    status, body = await api.get("/api/v1/tags")
    assert status == 200 and body["items"] == [
        {"name": "late", "contacts": 0},
        {"name": "lisbon", "contacts": 2},
        {"name": "vip", "contacts": 2},
    ]


def test_values_are_shown_as_people_write_them() -> None:
    assert [shown(v) for v in (12.0, 12345678.0, 2.5, True, False, None, "pro")] == [
        "12",
        "12345678",  # not 1.23457e+07
        "2.5",
        "yes",
        "no",
        "",
        "pro",
    ]
    assert shown(datetime(2026, 11, 30, 9, 15)) == "2026-11-30"
    assert shown(["red", 2.0, True]) == "red, 2, yes"
