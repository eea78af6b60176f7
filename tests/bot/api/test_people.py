# ruff: noqa: F811 - the `people` fixture is imported by name, then requested as an argument
"""Users, teams and the space's settings through the API, with roles enforced.

Covers `bot.api.space`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from bot.api.auth import create_token
from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import spaces, team_members
from bot.workspace.bootstrap import add_admin, create_space
from tests.bot.api.test_conversations import auth, open_conversation, people  # noqa: F401
from tests.conftest import count


async def test_users_teams_and_space(client: TestClient, people: dict[str, Any]) -> None:
    manager, agent = auth(people["manager"]), auth(people["agent"])
    new = {"name": "Caio", "email": "caio@example.com", "role": "agent"}
    assert (await client.post("/api/v1/users", json=new, headers=agent)).status == 403
    made = await client.post("/api/v1/users", json=new, headers=manager)
    assert made.status == 201
    caio = (await made.json())["id"]
    again = await client.post("/api/v1/users", json=new, headers=manager)
    assert again.status == 400 and "already" in (await again.json())["detail"]
    bad = await client.post("/api/v1/users", json={**new, "email": "nope"}, headers=manager)
    assert bad.status == 400

    # an agent sets their own availability, not someone else's, and never a role
    me = people["admin_id"]
    own = await client.patch(f"/api/v1/users/{me}", json={"availability": "online"}, headers=agent)
    assert (await own.json())["availability"] == "online"
    assert (
        await client.patch(f"/api/v1/users/{caio}", json={"availability": "away"}, headers=agent)
    ).status == 403
    assert (
        await client.patch(f"/api/v1/users/{me}", json={"role": "manager"}, headers=agent)
    ).status == 403
    promoted = await client.patch(
        f"/api/v1/users/{caio}", json={"role": "manager"}, headers=manager
    )
    assert (await promoted.json())["role"] == "manager"

    team = (
        await (await client.post("/api/v1/teams", json={"name": "Billing"}, headers=manager)).json()
    )["id"]
    await client.post(f"/api/v1/teams/{team}/members", json={"user_id": caio}, headers=manager)
    await client.post(f"/api/v1/teams/{team}/members", json={"user_id": caio}, headers=manager)
    listed = await (await client.get("/api/v1/teams", headers=agent)).json()
    assert listed["items"] == [
        {"id": team, "name": "Billing", "slack_channel": None, "members": [caio]}
    ]
    gone = await client.delete(f"/api/v1/teams/{team}/members/{caio}", headers=manager)
    assert gone.status == 204
    users = await (await client.get("/api/v1/users", headers=agent)).json()
    assert {u["email"] for u in users["items"]} == {"bea@example.com", "caio@example.com"}

    tz = await client.patch("/api/v1/space", json={"timezone": "Mars/Olympus"}, headers=manager)
    assert tz.status == 400 and "time zone" in (await tz.json())["detail"]
    ok = await client.patch("/api/v1/space", json={"timezone": "Europe/Lisbon"}, headers=manager)
    assert (await ok.json())["timezone"] == "Europe/Lisbon"


async def test_a_user_of_another_space_cannot_join_a_team_here(
    client: TestClient, app, people: dict[str, Any]
) -> None:
    manager = auth(people["manager"])
    team = (await (await client.post("/api/v1/teams", json={"name": "T"}, headers=manager)).json())[
        "id"
    ]
    async with app[DB].write() as conn:
        await create_token(conn, app[DEFAULT_SPACE], None, "x", "agent")
    resp = await client.post(
        f"/api/v1/teams/{team}/members", json={"user_id": 999}, headers=manager
    )
    assert resp.status == 404


async def test_org_admins_create_spaces_and_billing_sees_only_usage(
    client: TestClient, app, echo, people: dict[str, Any]
) -> None:
    admin, manager = auth(people["admin"]), auth(people["manager"])
    assert (await client.post("/api/v1/spaces", json={"name": "EU"}, headers=manager)).status == 403
    made = await (await client.post("/api/v1/spaces", json={"name": "EU"}, headers=admin)).json()
    spaces = await (await client.get("/api/v1/spaces", headers=admin)).json()
    assert [s["name"] for s in spaces["items"]] == ["Default", "EU"]
    # the new space's token sees the new space only
    fresh = auth(made["token"])
    assert (await (await client.get("/api/v1/conversations", headers=fresh)).json())["items"] == []

    await open_conversation(client, app, echo)
    billing_token = (
        await (
            await client.post(
                "/api/v1/tokens", headers=manager, json={"name": "accounts", "role": "billing"}
            )
        ).json()
    )["token"]
    billing = auth(billing_token)
    assert (await client.get("/api/v1/conversations", headers=billing)).status == 403
    assert (await client.get("/api/v1/contacts", headers=billing)).status == 403
    figures = await (await client.get("/api/v1/usage", headers=billing)).json()
    (row,) = figures["items"]
    assert row["channel_id"] == echo.id and row["in"] == 1 and row["out"] == 3
    assert len(row["month"]) == 7


async def test_organization_members_across_organizations(
    client: TestClient, app, people: dict[str, Any]
) -> None:
    admin, manager = auth(people["admin"]), auth(people["manager"])
    # a second organization whose admin is the same person as a member of the first
    async with app[DB].write() as conn:
        other = await create_space(conn, "Globex", "Main", default=False, webchat=False)
        carla = await add_admin(conn, other, "Carla", "carla@example.com")
        globex = auth(await create_token(conn, other.space_id, carla, "g", "admin"))
    new = {"name": "Carla", "email": "carla@example.com", "role": "billing_admin"}
    assert (
        await client.post("/api/v1/organization/members", json=new, headers=manager)
    ).status == 403
    # she has an account through Globex: she is invited, and joins when she accepts
    added = await client.post("/api/v1/organization/members", json=new, headers=admin)
    assert added.status == 202
    accept = {"code": (await added.json())["code"]}
    joined = await client.post("/api/v1/invitations/accept", json=accept, headers=globex)
    assert joined.status == 200 and (await joined.json())["role"] == "billing_admin"
    # Carla is in both; each organization lists its own members only
    ours = await (await client.get("/api/v1/organization", headers=admin)).json()
    theirs = await (await client.get("/api/v1/organization", headers=globex)).json()
    assert {(m["email"], m["role"]) for m in ours["members"]} == {
        ("bea@example.com", "admin"),
        ("carla@example.com", "billing_admin"),
    }
    assert [(m["email"], m["role"]) for m in theirs["members"]] == [("carla@example.com", "admin")]

    # the last admin stays; a promoted member may then demote the first
    url = f"/api/v1/organization/members/{people['admin_id']}"
    last = await client.patch(url, json={"role": "member"}, headers=admin)
    assert last.status == 400 and "at least one admin" in (await last.json())["detail"]
    assert (
        await client.patch(
            f"/api/v1/organization/members/{carla}", json={"role": "admin"}, headers=admin
        )
    ).status == 200
    # an admin token of a user who is no longer an org admin loses the organization's rights
    assert (await client.patch(url, json={"role": "member"}, headers=admin)).status == 200
    assert (await client.get("/api/v1/organization", headers=admin)).status == 403

    # removing Carla from this organization leaves her other one alone
    async with app[DB].write() as conn:
        owner = auth(await create_token(conn, app[DEFAULT_SPACE], None, "org", "admin"))
    sole = await client.delete(f"/api/v1/organization/members/{carla}", headers=owner)
    assert sole.status == 400  # she is this organization's only admin now
    assert (await client.patch(url, json={"role": "admin"}, headers=owner)).status == 200
    gone = await client.delete(f"/api/v1/organization/members/{carla}", headers=owner)
    assert gone.status == 204
    theirs = await (await client.get("/api/v1/organization", headers=globex)).json()
    assert [m["email"] for m in theirs["members"]] == ["carla@example.com"]
    missing = await client.delete(f"/api/v1/organization/members/{carla}", headers=owner)
    assert missing.status == 404


async def test_teams_are_deleted_with_their_memberships(
    client: TestClient, app, people: dict[str, Any]
) -> None:
    manager, agent = auth(people["manager"]), auth(people["agent"])
    team = (await (await client.post("/api/v1/teams", json={"name": "T"}, headers=manager)).json())[
        "id"
    ]
    await client.post(
        f"/api/v1/teams/{team}/members", json={"user_id": people["admin_id"]}, headers=manager
    )
    assert (await client.delete(f"/api/v1/teams/{team}", headers=agent)).status == 403
    assert (await client.delete(f"/api/v1/teams/{team}", headers=manager)).status == 204
    assert (await (await client.get("/api/v1/teams", headers=agent)).json())["items"] == []
    assert await count(app, team_members) == 0
    assert (await client.delete(f"/api/v1/teams/{team}", headers=manager)).status == 404


SETTINGS: dict[str, Any] = {
    "business_hours": {"days": {"mon": ["09:00", "17:00"]}, "holidays": ["2025-12-25"]},
    "away_text": "We are away",
    "away_every_minutes": 30,
    "handover_text": "A person will answer",
    "handover_keywords": {"en": ["human"]},
    "away_flow": "away",
    "csat_survey": "csat",
    "opt_out_keywords": ["STOP", "Chega"],
    "opt_in_keywords": [],
    "opt_out_reply": "No more news from us.",
    "opt_in_reply": "Welcome back.",
}


async def test_space_settings_are_cleared_by_null_and_kept_when_absent(
    client: TestClient, app, people: dict[str, Any]
) -> None:
    manager = auth(people["manager"])
    set_all = await client.patch("/api/v1/space", json=SETTINGS, headers=manager)
    assert set_all.status == 200
    assert {k: (await set_all.json())[k] for k in SETTINGS} == SETTINGS
    # absent: unchanged
    renamed = await client.patch("/api/v1/space", json={"name": "Acme"}, headers=manager)
    assert {k: (await renamed.json())[k] for k in SETTINGS} == SETTINGS
    # null: removed, one at a time, the others kept
    for i, key in enumerate(SETTINGS):
        cleared = await client.patch("/api/v1/space", json={key: None}, headers=manager)
        assert cleared.status == 200
        space = await cleared.json()
        assert space[key] is None
        assert {k: space[k] for k in list(SETTINGS)[i + 1 :]} == {
            k: SETTINGS[k] for k in list(SETTINGS)[i + 1 :]
        }
    async with app[DB].read() as conn:
        query = sa.select(spaces.c.settings).where(spaces.c.id == app[DEFAULT_SPACE])
        stored = (await conn.execute(query)).scalar_one()
    assert stored == {}  # the handover reads its defaults again
    # a space keeps its name and time zone
    for key in ("name", "timezone"):
        kept = await client.patch("/api/v1/space", json={key: None}, headers=manager)
        assert kept.status == 400 and key in (await kept.json())["detail"]


async def test_opt_out_keywords_are_lists_of_words_apart_from_the_opt_in_ones(
    client: TestClient, people: dict[str, Any]
) -> None:
    manager = auth(people["manager"])
    kept = await client.patch(
        "/api/v1/space", json={"opt_out_keywords": ["  Halt "]}, headers=manager
    )
    assert (await kept.json())["opt_out_keywords"] == ["Halt"]
    for bad, says in (
        ({"opt_out_keywords": "STOP"}, "opt_out_keywords"),
        ({"opt_in_keywords": ["  "]}, "blank"),
        ({"opt_out_keywords": ["x" * 51]}, "opt_out_keywords.0"),
        ({"opt_out_keywords": ["stop"], "opt_in_keywords": ["STOP"]}, "both"),
        ({"opt_out_reply": ""}, "opt_out_reply"),
    ):
        resp = await client.patch("/api/v1/space", json=bad, headers=manager)
        assert resp.status == 400, bad
        assert says in (await resp.json())["detail"], bad
