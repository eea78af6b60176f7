# ruff: noqa: F811 - the `people` fixture is imported by name, then requested as an argument
"""Organizations stay apart: people shared by several are invited, never grafted, and
one organization never edits what another sees of them (issue #13)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.api.auth import create_token
from bot.clock import now
from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import invitations, organization_members, space_members, spaces, users
from bot.workspace.bootstrap import add_admin, create_space
from tests.bot.api.test_conversations import auth, people  # noqa: F401

CARLA = {"name": "Carla Globex", "email": "carla@example.com", "slack": "U0CARLASECRET"}


@pytest.fixture
async def globex(app: Application) -> dict[str, Any]:
    """A second organization whose only admin, Carla, has a Slack id and a token of her own."""
    async with app[DB].write() as conn:
        other = await create_space(conn, "Globex", "Main", default=False, webchat=False)
        carla = await add_admin(conn, other, CARLA["name"], CARLA["email"])
        await conn.execute(
            users.update().where(users.c.id == carla).values(slack_user_id=CARLA["slack"])
        )
        token = await create_token(conn, other.space_id, carla, "carla", "admin")
    return {
        "carla": carla,
        "space_id": other.space_id,
        "org": other.organization_id,
        "token": token,
    }


async def _join_default(app: Application, user_id: int, org_role: str = "member") -> None:
    """What a grafted (pre-#13) or accepted membership leaves in the default space."""
    async with app[DB].write() as conn:
        org = (
            await conn.execute(
                sa.select(spaces.c.organization_id).where(spaces.c.id == app[DEFAULT_SPACE])
            )
        ).scalar_one()
        await conn.execute(
            organization_members.insert().values(
                organization_id=org, user_id=user_id, role=org_role
            )
        )
        await conn.execute(
            space_members.insert().values(
                space_id=app[DEFAULT_SPACE], user_id=user_id, role="agent"
            )
        )


async def _emails(client: TestClient, headers: dict[str, str]) -> set[str]:
    listed = await (await client.get("/api/v1/users", headers=headers)).json()
    return {u["email"] for u in listed["items"]}


async def test_adding_another_organizations_user_invites_them_and_echoes_nothing(
    client: TestClient, app: Application, people: dict[str, Any], globex: dict[str, Any]
) -> None:
    manager, admin, carla = auth(people["manager"]), auth(people["admin"]), auth(globex["token"])
    asked = {"name": "Whoever", "email": CARLA["email"], "role": "agent"}
    made = await client.post("/api/v1/users", json=asked, headers=manager)
    assert made.status == 202
    invitation = await made.json()
    assert set(invitation) == {
        "id",
        "email",
        "role",
        "space_id",
        "invited_by",
        "status",
        "expires_at",
        "code",
    }
    assert (invitation["email"], invitation["role"], invitation["status"]) == (
        CARLA["email"],
        "agent",
        "pending",
    )
    assert invitation["space_id"] == app[DEFAULT_SPACE]
    text = json.dumps(invitation)
    assert CARLA["name"] not in text and CARLA["slack"] not in text
    # not grafted: neither the space nor the organization has her yet
    assert CARLA["email"] not in await _emails(client, manager)
    org = await (await client.get("/api/v1/organization", headers=admin)).json()
    assert CARLA["email"] not in {m["email"] for m in org["members"]}

    # managers see it pending (without its code); agents do not list invitations
    pending = await (await client.get("/api/v1/invitations", headers=manager)).json()
    assert [(i["id"], i["email"], "code" in i) for i in pending["items"]] == [
        (invitation["id"], CARLA["email"], False)
    ]
    assert (await client.get("/api/v1/invitations", headers=auth(people["agent"]))).status == 403

    # only Carla, with a token of her own, takes it; for anyone else the code does not exist
    code = {"code": invitation["code"]}
    stolen = await client.post("/api/v1/invitations/accept", json=code, headers=manager)
    assert stolen.status == 404
    async with app[DB].write() as conn:
        nobody = auth(await create_token(conn, globex["space_id"], None, "org", "admin"))
    assert (
        await client.post("/api/v1/invitations/accept", json=code, headers=nobody)
    ).status == 403
    wrong = await client.post("/api/v1/invitations/accept", json={"code": "x"}, headers=carla)
    assert wrong.status == 404

    accepted = await client.post("/api/v1/invitations/accept", json=code, headers=carla)
    assert accepted.status == 200
    joined = await accepted.json()
    assert joined["space"]["id"] == app[DEFAULT_SPACE] and joined["role"] == "agent"
    # she is in, under her own name, and her new token works here as an agent
    mine = auth(joined["token"])
    listed = await (await client.get("/api/v1/users", headers=mine)).json()
    (row,) = [u for u in listed["items"] if u["email"] == CARLA["email"]]
    assert (row["id"], row["name"], row["role"]) == (globex["carla"], CARLA["name"], "agent")
    assert (await client.get("/api/v1/invitations", headers=mine)).status == 403
    org = await (await client.get("/api/v1/organization", headers=admin)).json()
    assert {m["email"]: m["role"] for m in org["members"]}[CARLA["email"]] == "member"
    # used once, then gone from the pending list; Globex is untouched
    again = await client.post("/api/v1/invitations/accept", json=code, headers=carla)
    assert again.status == 404
    assert (await (await client.get("/api/v1/invitations", headers=manager)).json())["items"] == []
    theirs = await (await client.get("/api/v1/organization", headers=carla)).json()
    assert [(m["email"], m["role"]) for m in theirs["members"]] == [(CARLA["email"], "admin")]


async def test_new_and_same_organization_emails_are_added_at_once(
    client: TestClient, app: Application, people: dict[str, Any]
) -> None:
    manager, admin = auth(people["manager"]), auth(people["admin"])
    fresh = await client.post(
        "/api/v1/users", json={"name": "Dan", "email": "dan@example.com"}, headers=manager
    )
    assert fresh.status == 201 and (await fresh.json())["name"] == "Dan"
    # a member of this organization who is not in this space yet joins it directly
    made = await (await client.post("/api/v1/spaces", json={"name": "EU"}, headers=admin)).json()
    eu = auth(made["token"])
    added = await client.post(
        "/api/v1/users", json={"name": "Dan", "email": "dan@example.com"}, headers=eu
    )
    assert added.status == 201
    assert (await client.get("/api/v1/invitations", headers=eu)).status == 200


async def test_invitations_expire_are_reissued_and_withdrawn(
    client: TestClient, app: Application, people: dict[str, Any], globex: dict[str, Any]
) -> None:
    manager, carla = auth(people["manager"]), auth(globex["token"])
    asked = {"name": "C", "email": CARLA["email"], "role": "manager"}
    first = await (await client.post("/api/v1/users", json=asked, headers=manager)).json()
    second = await (await client.post("/api/v1/users", json=asked, headers=manager)).json()
    # asking again replaces the pending invitation: the first code no longer works
    pending = await (await client.get("/api/v1/invitations", headers=manager)).json()
    assert [i["id"] for i in pending["items"]] == [second["id"]]
    url = "/api/v1/invitations/accept"
    assert (await client.post(url, json={"code": first["code"]}, headers=carla)).status == 404

    async with app[DB].write() as conn:
        await conn.execute(invitations.update().values(expires_at=now() - timedelta(seconds=1)))
    expired = await client.post(url, json={"code": second["code"]}, headers=carla)
    assert expired.status == 404 and "expired" in (await expired.json())["detail"]
    assert (await (await client.get("/api/v1/invitations", headers=manager)).json())["items"] == []

    third = await (await client.post("/api/v1/users", json=asked, headers=manager)).json()
    gone = f"/api/v1/invitations/{third['id']}"
    assert (await client.delete(gone, headers=auth(people["agent"]))).status == 403
    assert (await client.delete(gone, headers=carla)).status == 404  # not Globex's
    assert (await client.delete(gone, headers=manager)).status == 204
    assert (await client.post(url, json={"code": third["code"]}, headers=carla)).status == 404
    assert (await client.delete(gone, headers=manager)).status == 404


async def test_adding_another_organizations_user_to_the_organization_invites_them(
    client: TestClient, app: Application, people: dict[str, Any], globex: dict[str, Any]
) -> None:
    admin, carla = auth(people["admin"]), auth(globex["token"])
    asked = {"name": "Whoever", "email": CARLA["email"], "role": "billing_admin"}
    made = await client.post("/api/v1/organization/members", json=asked, headers=admin)
    assert made.status == 202
    invitation = await made.json()
    assert invitation["space_id"] is None and invitation["role"] == "billing_admin"
    assert CARLA["name"] not in json.dumps(invitation)
    org = await (await client.get("/api/v1/organization", headers=admin)).json()
    assert CARLA["email"] not in {m["email"] for m in org["members"]}
    # organization admins list it; a space manager's list shows only the space's
    listed = await (await client.get("/api/v1/invitations", headers=admin)).json()
    assert [i["id"] for i in listed["items"]] == [invitation["id"]]
    managed = await (
        await client.get("/api/v1/invitations", headers=auth(people["manager"]))
    ).json()
    assert managed["items"] == []

    accepted = await client.post(
        "/api/v1/invitations/accept", json={"code": invitation["code"]}, headers=carla
    )
    assert accepted.status == 200
    joined = await accepted.json()
    assert joined["space"] is None and joined["token"] is None
    org = await (await client.get("/api/v1/organization", headers=admin)).json()
    assert {m["email"]: m["role"] for m in org["members"]}[CARLA["email"]] == "billing_admin"
    assert CARLA["email"] not in await _emails(client, admin)  # in no space yet


async def test_a_space_edits_its_membership_never_the_persons_global_record(
    client: TestClient, app: Application, people: dict[str, Any], globex: dict[str, Any]
) -> None:
    manager, admin, carla = auth(people["manager"]), auth(people["admin"]), auth(globex["token"])
    await _join_default(app, globex["carla"])
    url = f"/api/v1/users/{globex['carla']}"
    for change in ({"slack_user_id": "U0EVIL"}, {"availability": "away"}):
        # neither this space's manager nor this organization's admin: she is also Globex's
        assert (await client.patch(url, json=change, headers=manager)).status == 403
        assert (await client.patch(url, json=change, headers=admin)).status == 403
    theirs = await (await client.get("/api/v1/users", headers=carla)).json()
    (seen,) = theirs["items"]
    assert (seen["slack_user_id"], seen["availability"]) == (CARLA["slack"], "offline")

    # the membership is this space's own: role and capacity change here only
    mine = await client.patch(url, json={"role": "manager", "capacity": 3}, headers=manager)
    assert mine.status == 200
    assert ((await mine.json())["role"], (await mine.json())["capacity"]) == ("manager", 3)
    (seen,) = (await (await client.get("/api/v1/users", headers=carla)).json())["items"]
    assert (seen["role"], seen["capacity"]) == ("manager", None)

    # she changes her own record, from either organization's token
    own = await client.patch(url, json={"slack_user_id": "U0NEW"}, headers=carla)
    assert own.status == 200 and (await own.json())["slack_user_id"] == "U0NEW"
    # an admin of every organization she belongs to may too
    async with app[DB].write() as conn:
        await conn.execute(
            organization_members.insert().values(
                organization_id=globex["org"], user_id=people["admin_id"], role="admin"
            )
        )
    assert (await client.patch(url, json={"availability": "away"}, headers=admin)).status == 200
    assert (await client.patch(url, json={"availability": "away"}, headers=manager)).status == 403


async def test_organization_admins_edit_their_own_people_and_agents_only_availability(
    client: TestClient, app: Application, people: dict[str, Any]
) -> None:
    manager, agent = auth(people["manager"]), auth(people["agent"])
    made = await client.post(
        "/api/v1/users", json={"name": "Dan", "email": "dan@example.com"}, headers=manager
    )
    dan = (await made.json())["id"]
    url = f"/api/v1/users/{dan}"
    # this organization is Dan's only one: its admins (and its own token) edit him
    async with app[DB].write() as conn:
        owner = auth(await create_token(conn, app[DEFAULT_SPACE], None, "org", "admin"))
    assert (await client.patch(url, json={"slack_user_id": "U0DAN"}, headers=owner)).status == 200
    assert (
        await client.patch(url, json={"availability": "online"}, headers=auth(people["admin"]))
    ).status == 200
    assert (await client.patch(url, json={"availability": "away"}, headers=manager)).status == 403
    # an agent token changes its own availability, and nothing else of the record
    me = f"/api/v1/users/{people['admin_id']}"
    assert (await client.patch(me, json={"availability": "away"}, headers=agent)).status == 200
    assert (await client.patch(me, json={"slack_user_id": "U0X"}, headers=agent)).status == 403
    assert (await client.patch(me, json={"slack_user_id": "U0X"}, headers=manager)).status == 200


async def test_users_outside_the_space_do_not_exist_for_it(
    client: TestClient, app: Application, people: dict[str, Any], globex: dict[str, Any]
) -> None:
    admin = auth(people["admin"])
    url = f"/api/v1/users/{globex['carla']}"
    for change in ({"availability": "away"}, {"role": "manager"}, {"slack_user_id": "U0X"}):
        assert (await client.patch(url, json=change, headers=admin)).status == 404
    team = (await (await client.post("/api/v1/teams", json={"name": "T"}, headers=admin)).json())[
        "id"
    ]
    joined = await client.post(
        f"/api/v1/teams/{team}/members", json={"user_id": globex["carla"]}, headers=admin
    )
    assert joined.status == 404
    member = f"/api/v1/organization/members/{globex['carla']}"
    assert (await client.patch(member, json={"role": "admin"}, headers=admin)).status == 404
    assert (await client.delete(member, headers=admin)).status == 404


async def test_leaving_an_organization_revokes_the_tokens_of_its_spaces(
    client: TestClient, app: Application, people: dict[str, Any], globex: dict[str, Any]
) -> None:
    admin, carla = auth(people["admin"]), auth(globex["token"])
    asked = {"name": "C", "email": CARLA["email"]}
    code = (await (await client.post("/api/v1/users", json=asked, headers=admin)).json())["code"]
    joined = await (
        await client.post("/api/v1/invitations/accept", json={"code": code}, headers=carla)
    ).json()
    hers = auth(joined["token"])
    assert (await client.get("/api/v1/users", headers=hers)).status == 200
    url = f"/api/v1/organization/members/{globex['carla']}"
    assert (await client.delete(url, headers=admin)).status == 204
    assert (await client.get("/api/v1/users", headers=hers)).status == 401
    assert (await client.get("/api/v1/users", headers=carla)).status == 200  # Globex's still works


async def test_a_token_acts_only_while_its_user_is_in_the_space_and_within_their_role(
    client: TestClient, app: Application, people: dict[str, Any]
) -> None:
    manager, agent = auth(people["manager"]), auth(people["agent"])
    bea = f"/api/v1/users/{people['admin_id']}"
    async with app[DB].write() as conn:
        owner = auth(await create_token(conn, app[DEFAULT_SPACE], None, "org", "admin"))
    # demoted to agent, her manager token does what an agent may, until she is promoted again
    assert (await client.patch(bea, json={"role": "agent"}, headers=owner)).status == 200
    assert (await client.get("/api/v1/tokens", headers=manager)).status == 403
    assert (await client.patch(bea, json={"role": "manager"}, headers=manager)).status == 403
    assert (await client.patch(bea, json={"role": "manager"}, headers=owner)).status == 200
    assert (await client.get("/api/v1/tokens", headers=manager)).status == 200
    # out of the space (whatever took her out), none of her tokens acts here any more
    async with app[DB].write() as conn:
        await conn.execute(
            space_members.delete().where(space_members.c.user_id == people["admin_id"])
        )
    assert (await client.get("/api/v1/users", headers=agent)).status == 401
    assert (await client.get("/api/v1/users", headers=owner)).status == 200
