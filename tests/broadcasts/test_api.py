"""`/api/v1/broadcasts`: a bad body is a 400/422 naming the field and stores nothing;
managers create and move broadcasts, agents read them, other spaces see nothing; the
recipients page by id and their CSV is safe to open in a spreadsheet."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.api.auth import create_token
from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import broadcast_recipients, broadcasts, contacts, shortcuts, spaces, users
from bot.storage.tables import views as views_table
from bot.workspace.bootstrap import create_space
from tests.conftest import count
from tests.fakes.echo_channel import EchoChannel

API = "/api/v1/broadcasts"
HOSTILE = "=cmd|' /C calc'!A0"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def tokens(app: Application) -> dict[str, dict[str, str]]:
    """A manager's and an agent's token in the default space, an admin's of another."""
    space = app[DEFAULT_SPACE]
    async with app[DB].write() as conn:
        manager = await create_token(conn, space, None, "m", "manager")
        agent = await create_token(conn, space, None, "a", "agent")
        other = await create_space(conn, "Rival", "Rival", default=False, webchat=False)
        stranger = await create_token(conn, other.space_id, None, "r", "admin")
    return {"manager": auth(manager), "agent": auth(agent), "stranger": auth(stranger)}


@pytest.fixture
def manager(tokens: dict[str, dict[str, str]]) -> dict[str, str]:
    return tokens["manager"]


async def _insert(app: Application, table: sa.Table, **values: Any) -> int:
    async with app[DB].write() as conn:
        return (
            await conn.execute(table.insert().values(**values).returning(table.c.id))
        ).scalar_one()


@pytest.fixture
async def people(app: Application) -> list[int]:
    """Three contacts of the default space; the first with a name meant to run in Excel."""
    space = app[DEFAULT_SPACE]
    return [await _insert(app, contacts, space_id=space, name=n) for n in (HOSTILE, "Bo", "Cy")]


@pytest.fixture
async def everyone(app: Application) -> int:
    """A shared view of every contact."""
    return await _insert(
        app, views_table, space_id=app[DEFAULT_SPACE], name="everyone", filter={"all": []}
    )


def offer(channel: str, **given: Any) -> dict[str, Any]:
    return {
        "name": "December offer",
        "channel_id": channel,
        "message": {"text": "Hi {{contact.first_name}}, 20% off until Sunday"},
        **given,
    }


async def created(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> Any:
    resp = await client.post(API, json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_create_with_a_view_or_contacts_then_show_and_list(
    client: TestClient,
    manager: dict[str, str],
    echo: EchoChannel,
    people: list[int],
    everyone: int,
) -> None:
    by_view = await created(client, manager, offer(echo.id, view_id=everyone))
    assert by_view["status"] == "draft" and by_view["view_id"] == everyone
    assert by_view["contact_count"] is None and by_view["planned"] is False
    assert by_view["message"] == {"text": "Hi {{contact.first_name}}, 20% off until Sunday"}
    assert by_view["settings"] == {"skip_with_person": True}
    assert by_view["send_at"] is None and by_view["created_at"] and by_view["started_at"] is None
    assert by_view["counts"]["total"] == 0 and by_view["counts"]["queued"] == 0
    assert by_view["skipped"] == {} and by_view["last_error"] is None

    listed = offer(
        echo.id,
        name="Listed",
        contact_ids=people[:2],
        message={"text": "Hi", "quick_replies": [{"title": "Yes", "payload": "YES"}]},
        settings={"skip_with_person": False},
    )
    by_contacts = await created(client, manager, listed)
    assert by_contacts["contact_count"] == 2 and by_contacts["view_id"] is None
    assert by_contacts["settings"] == {"skip_with_person": False}
    assert by_contacts["message"]["quick_replies"] == [{"title": "Yes", "payload": "YES"}]

    shown = await (await client.get(f"{API}/{by_view['id']}", headers=manager)).json()
    assert shown == by_view
    page = await (await client.get(f"{API}?limit=1", headers=manager)).json()
    assert [b["name"] for b in page["items"]] == ["Listed"]  # newest first
    rest = await client.get(f"{API}?limit=1&before={page['next_before']}", headers=manager)
    assert [b["name"] for b in (await rest.json())["items"]] == ["December offer"]
    assert (await client.get(f"{API}?sort=name", headers=manager)).status == 400


async def test_each_bad_body_is_refused_naming_the_field(
    client: TestClient,
    app: Application,
    manager: dict[str, str],
    echo: EchoChannel,
    people: list[int],
    everyone: int,
) -> None:
    space = app[DEFAULT_SPACE]
    someone = await _insert(app, users, name="Ana", email="ana@example.com")
    private = await _insert(app, shortcuts, space_id=space, user_id=someone, name="p", text="x")
    async with app[DB].write() as conn:
        rival = await create_space(conn, "Other", "Other", default=False, webchat=False)
    stranger = await _insert(app, contacts, space_id=rival.space_id, name="Zed")
    channel, view = echo.id, {"view_id": everyone}
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("no segment", offer(channel), 400, "view_id or contact_ids"),
        ("both segments", offer(channel, view_id=everyone, contact_ids=people), 400, "one of"),
        (
            "a template off WhatsApp",
            offer(channel, **view, message={"template": {"name": "offer"}}),
            422,
            "message.template",
        ),
        (
            "a tag off Messenger",
            offer(channel, **view, message={"text": "Hi", "tag": "ACCOUNT_UPDATE"}),
            422,
            "message.tag",
        ),
        (
            "an unknown shortcut",
            offer(channel, **view, message={"shortcut_id": 999}),
            422,
            "message.shortcut_id",
        ),
        (
            "a private shortcut",
            offer(channel, **view, message={"shortcut_id": private}),
            422,
            "message.shortcut_id",
        ),
        (
            "an unknown variable",
            offer(channel, **view, message={"text": "Hi {{contact.fields.shoe_size}}"}),
            422,
            "message.text",
        ),
        ("an unknown channel", offer("nope", **view), 404, "no channel 'nope'"),
        ("another space's contact", offer(channel, contact_ids=[stranger]), 422, "contact_ids"),
        ("an unknown view", offer(channel, view_id=9999), 422, "view_id"),
        ("a misspelt field", {**offer(channel, **view), "sendat": "x"}, 400, "sendat"),
        ("no message", {"name": "x", "channel_id": channel, **view}, 400, "message"),
        (
            "a template without a name",
            offer(channel, **view, message={"template": {"language": "en"}}),
            400,
            "message.template.name",
        ),
    ]
    for case, body, status, words in cases:
        resp = await client.post(API, json=body, headers=manager)
        problem = await resp.json()
        assert resp.status == status, (case, problem)
        assert resp.content_type == "application/problem+json", case
        assert words in problem["detail"], (case, problem["detail"])
    assert await count(app, broadcasts) == 0


async def test_a_taken_name_is_409(
    client: TestClient, manager: dict[str, str], echo: EchoChannel, everyone: int
) -> None:
    await created(client, manager, offer(echo.id, view_id=everyone))
    again = await client.post(API, json=offer(echo.id, view_id=everyone), headers=manager)
    assert again.status == 409 and "December offer" in (await again.json())["detail"]


async def test_the_state_machine_through_the_api(
    client: TestClient, manager: dict[str, str], echo: EchoChannel, everyone: int
) -> None:
    first = await created(client, manager, offer(echo.id, view_id=everyone))
    started = await client.post(f"{API}/{first['id']}/start", headers=manager)
    assert started.status == 200, await started.text()
    body = await started.json()
    assert body["status"] == "running" and body["started_at"]
    again = await client.post(f"{API}/{first['id']}/start", headers=manager)
    assert again.status == 409 and "cannot start" in (await again.json())["detail"]

    second = await created(client, manager, offer(echo.id, name="B", view_id=everyone))
    paused = await client.post(f"{API}/{second['id']}/pause", headers=manager)
    assert paused.status == 409
    assert (await paused.json())["detail"] == "cannot pause a broadcast that is draft"
    cancelled = await client.post(f"{API}/{second['id']}/cancel", headers=manager)
    assert cancelled.status == 200
    body = await cancelled.json()
    assert body["status"] == "cancelled" and body["finished_at"]
    for action in ("resume", "start", "cancel"):
        late = await client.post(f"{API}/{second['id']}/{action}", headers=manager)
        assert late.status == 409, action
    missing = await client.post(f"{API}/999/start", headers=manager)
    assert missing.status == 404 and "broadcasts list" in (await missing.json())["detail"]


async def test_agents_read_and_managers_write(
    client: TestClient,
    tokens: dict[str, dict[str, str]],
    echo: EchoChannel,
    everyone: int,
) -> None:
    agent, manager = tokens["agent"], tokens["manager"]
    refused = await client.post(API, json=offer(echo.id, view_id=everyone), headers=agent)
    assert refused.status == 403 and "manager" in (await refused.json())["detail"]
    draft = await created(client, manager, offer(echo.id, view_id=everyone))
    for action in ("start", "pause", "resume", "cancel"):
        assert (await client.post(f"{API}/{draft['id']}/{action}", headers=agent)).status == 403
    for path in ("", f"/{draft['id']}", f"/{draft['id']}/recipients"):
        assert (await client.get(API + path, headers=agent)).status == 200, path
    shown = await (await client.get(f"{API}/{draft['id']}", headers=agent)).json()
    assert shown["status"] == "draft"  # nothing the agent tried moved it


async def test_another_space_sees_nothing(
    client: TestClient,
    tokens: dict[str, dict[str, str]],
    echo: EchoChannel,
    everyone: int,
) -> None:
    draft = await created(client, tokens["manager"], offer(echo.id, view_id=everyone))
    stranger = tokens["stranger"]
    for path in ("", "/recipients", "/recipients.csv"):
        resp = await client.get(f"{API}/{draft['id']}{path}", headers=stranger)
        assert resp.status == 404, path
    for action in ("start", "cancel"):
        assert (await client.post(f"{API}/{draft['id']}/{action}", headers=stranger)).status == 404
    assert (await (await client.get(API, headers=stranger)).json())["items"] == []
    # nor may it send through this space's channel
    theirs = await client.post(API, json=offer(echo.id, view_id=everyone), headers=stranger)
    assert theirs.status == 404


async def test_send_at_without_an_offset_is_in_the_space_time_zone(
    client: TestClient,
    app: Application,
    manager: dict[str, str],
    echo: EchoChannel,
    everyone: int,
) -> None:
    async with app[DB].write() as conn:
        await conn.execute(
            spaces.update()
            .where(spaces.c.id == app[DEFAULT_SPACE])
            .values(timezone="America/New_York")
        )
    local = await created(
        client, manager, offer(echo.id, view_id=everyone, send_at="2026-12-10T09:00")
    )
    assert local["status"] == "scheduled"
    assert datetime.fromisoformat(local["send_at"]) == datetime(2026, 12, 10, 14, tzinfo=UTC)
    given = offer(echo.id, name="B", view_id=everyone, send_at="2026-12-10T09:00+01:00")
    offset = await created(client, manager, given)
    assert datetime.fromisoformat(offset["send_at"]) == datetime(2026, 12, 10, 8, tzinfo=UTC)


async def test_recipients_page_filter_and_export_safely(
    client: TestClient,
    app: Application,
    manager: dict[str, str],
    echo: EchoChannel,
    people: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows written as the runner would after planning (a draft: the runner leaves it)."""
    draft = await created(client, manager, offer(echo.id, contact_ids=people))
    sent_at = datetime(2026, 12, 10, 9, tzinfo=UTC)
    fates = [
        {"status": "sent", "sent_at": sent_at},
        {"status": "skipped", "reason": "no identity on this channel"},
        {"status": "failed", "reason": "blocked"},
    ]
    async with app[DB].write() as conn:
        for contact_id, fate in zip(people, fates, strict=True):
            await conn.execute(
                broadcast_recipients.insert().values(
                    broadcast_id=draft["id"], contact_id=contact_id, **fate
                )
            )
    recipients = f"{API}/{draft['id']}/recipients"
    page = await (await client.get(recipients, headers=manager)).json()
    assert [
        (r["contact_id"], r["contact_name"], r["status"], r["reason"]) for r in page["items"]
    ] == [
        (people[0], HOSTILE, "sent", None),
        (people[1], "Bo", "skipped", "no identity on this channel"),
        (people[2], "Cy", "failed", "blocked"),
    ]
    assert datetime.fromisoformat(page["items"][0]["sent_at"]) == sent_at
    assert page["next_after"] is None
    first = await (await client.get(f"{recipients}?limit=2", headers=manager)).json()
    rest = await client.get(f"{recipients}?limit=2&after={first['next_after']}", headers=manager)
    assert [r["contact_id"] for r in (await rest.json())["items"]] == [people[2]]
    skipped = await (await client.get(f"{recipients}?status=skipped", headers=manager)).json()
    assert [r["contact_name"] for r in skipped["items"]] == ["Bo"]
    for bad in ("status=lost", "page=2"):
        assert (await client.get(f"{recipients}?{bad}", headers=manager)).status == 400, bad

    shown = await (await client.get(f"{API}/{draft['id']}", headers=manager)).json()
    assert {k: shown["counts"][k] for k in ("sent", "skipped", "failed", "total")} == {
        "sent": 1,
        "skipped": 1,
        "failed": 1,
        "total": 3,
    }
    assert shown["skipped"] == {"no identity on this channel": 1}

    monkeypatch.setattr("broadcasts.api.CSV_PAGE", 2)  # three rows: two pages
    resp = await client.get(f"{recipients}.csv", headers=manager)
    assert resp.status == 200 and resp.content_type == "text/csv"
    lines = (await resp.text()).splitlines()
    assert lines[0] == "contact_id,contact_name,status,reason,message_id,sent_at"
    # the spreadsheet reads the name as text, never as a formula
    assert lines[1].startswith(f"{people[0]},'=cmd|' /C calc'!A0,sent,,,2026-12-10T09:00")
    assert [line.split(",")[2] for line in lines[2:]] == ["skipped", "failed"]
    failed = await (await client.get(f"{recipients}.csv?status=failed", headers=manager)).text()
    assert failed.splitlines()[1:] == [f"{people[2]},Cy,failed,blocked,,"]


async def test_the_openapi_document_lists_the_routes(client: TestClient) -> None:
    spec = await (await client.get("/api/v1/openapi.json")).json()
    one = f"{API}/{{broadcast_id}}"
    assert set(spec["paths"][API]) == {"get", "post"}
    assert set(spec["paths"][one]) == {"get"}
    for action in ("start", "pause", "resume", "cancel"):
        assert set(spec["paths"][f"{one}/{action}"]) == {"post"}, action
    assert set(spec["paths"][f"{one}/recipients"]) == {"get"}
    csv = spec["paths"][f"{one}/recipients.csv"]["get"]
    assert "text/csv" in csv["responses"]["200"]["content"]
    created_doc = spec["paths"][API]["post"]
    assert created_doc["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/NewBroadcast"
    )
    assert {"409", "422"} <= set(created_doc["responses"])
    assert {"NewBroadcast", "BroadcastMessage", "Template"} <= set(spec["components"]["schemas"])
