# ruff: noqa: F811 - the `people` fixture is imported by name, then requested as an argument
"""Organization roles, role by role, as the glossary says (issue #14): `admin` manages the
organization, its spaces and members; `billing_admin` reads usage and the subscription's
figures and nothing else; `member` reaches only the spaces they belong to.

Covers `bot.api.org`.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.keys import DEFAULT_SPACE
from tests.bot.api.test_conversations import auth, open_conversation, people  # noqa: F401
from tests.conftest import eventually
from tests.fakes.echo_channel import EchoChannel

ROLES = ("admin", "billing_admin", "manager", "agent")
OK_ALL = dict.fromkeys(ROLES, 200)
ADMIN_ONLY = {"admin": 200, "billing_admin": 403, "manager": 403, "agent": 403}
BILLING = {"admin": 200, "billing_admin": 200, "manager": 403, "agent": 403}
REPORTS = {"admin": 200, "billing_admin": 200, "manager": 200, "agent": 403}
MANAGERS = {"admin": 200, "billing_admin": 403, "manager": 200, "agent": 403}
SPACE = {"admin": 200, "billing_admin": 403, "manager": 200, "agent": 200}


def _created(expected: dict[str, int]) -> dict[str, int]:
    return {role: 201 if status == 200 else status for role, status in expected.items()}


# (route class, method, path, body); {role} in a body keeps each role's writes apart
ROUTES: list[tuple[str, str, str, Any, dict[str, int]]] = [
    ("organization: read", "GET", "/api/v1/organization", None, ADMIN_ONLY),
    (
        "organization: add a member",
        "POST",
        "/api/v1/organization/members",
        {"name": "N", "email": "org-{role}@example.com", "role": "member"},
        _created(ADMIN_ONLY),
    ),
    (
        "organization: change a member's role",
        "PATCH",
        "/api/v1/organization/members/{agent_id}",
        {"role": "member"},
        ADMIN_ONLY,
    ),
    ("spaces: list", "GET", "/api/v1/spaces", None, ADMIN_ONLY),
    ("spaces: create", "POST", "/api/v1/spaces", {"name": "S {role}"}, _created(ADMIN_ONLY)),
    ("usage: the space", "GET", "/api/v1/usage", None, REPORTS),
    ("usage: the subscription", "GET", "/api/v1/organization/usage", None, BILLING),
    ("space: read settings", "GET", "/api/v1/space", None, SPACE),
    ("space: change settings", "PATCH", "/api/v1/space", {"away_text": "x"}, MANAGERS),
    (
        "space: add a user",
        "POST",
        "/api/v1/users",
        {"name": "U", "email": "space-{role}@example.com", "role": "agent"},
        _created(MANAGERS),
    ),
    ("space: list tokens", "GET", "/api/v1/tokens", None, MANAGERS),
    (
        "space: issue a token",
        "POST",
        "/api/v1/tokens",
        {"name": "t", "role": "agent"},
        _created(MANAGERS),
    ),
    ("space: invitations", "GET", "/api/v1/invitations", None, MANAGERS),
    ("work: conversations", "GET", "/api/v1/conversations", None, SPACE),
    ("work: contacts", "GET", "/api/v1/contacts", None, SPACE),
    ("work: users", "GET", "/api/v1/users", None, SPACE),
]


async def _issue(client: TestClient, by: dict[str, str], role: str, user_id: int) -> str:
    made = await client.post(
        "/api/v1/tokens", json={"name": role, "role": role, "user_id": user_id}, headers=by
    )
    assert made.status == 201, await made.text()
    return str((await made.json())["token"])


@pytest.fixture
async def staff(client: TestClient, people: dict[str, Any]) -> dict[str, Any]:
    """Bea administers the organization (and manages the space); Billie is its billing admin
    and in no space; Mona (manager) and Aldo (agent) are plain members of the organization."""
    admin = auth(people["admin"])
    ids: dict[str, int] = {}
    for name, role in (("Mona", "manager"), ("Aldo", "agent")):
        new = {"name": name, "email": f"{name.lower()}@example.com", "role": role}
        ids[role] = (await (await client.post("/api/v1/users", json=new, headers=admin)).json())[
            "id"
        ]
    billie = {"name": "Billie", "email": "billie@example.com", "role": "billing_admin"}
    made = await client.post("/api/v1/organization/members", json=billie, headers=admin)
    assert made.status == 201
    ids["billing"] = (await made.json())["user_id"]
    org = await (await client.get("/api/v1/organization", headers=admin)).json()
    return {
        "ids": ids,
        "org": org["id"],
        "tokens": {
            "admin": people["admin"],
            "billing_admin": await _issue(client, admin, "billing", ids["billing"]),
            "manager": await _issue(client, admin, "manager", ids["manager"]),
            "agent": await _issue(client, admin, "agent", ids["agent"]),
        },
    }


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_reaches_what_the_glossary_says(
    client: TestClient, staff: dict[str, Any], role: str
) -> None:
    headers = auth(staff["tokens"][role])
    got: dict[str, int] = {}
    for what, method, path, body, _ in ROUTES:
        url = path.format(agent_id=staff["ids"]["agent"])
        data = None if body is None else {k: _fill(v, role) for k, v in body.items()}
        got[what] = (await client.request(method, url, json=data, headers=headers)).status
    assert got == {what: expected[role] for what, _, _, _, expected in ROUTES}


def _fill(value: Any, role: str) -> Any:
    return value.format(role=role) if isinstance(value, str) else value


async def test_a_member_reaches_only_the_spaces_they_belong_to(
    client: TestClient, people: dict[str, Any], staff: dict[str, Any]
) -> None:
    admin = auth(people["admin"])
    eu = await (await client.post("/api/v1/spaces", json={"name": "EU"}, headers=admin)).json()
    eu_admin = auth(eu["token"])
    mona = staff["ids"]["manager"]
    # Mona is not in EU: no token of EU may act as her
    stranger = {"name": "m", "role": "agent", "user_id": mona}
    assert (await client.post("/api/v1/tokens", json=stranger, headers=eu_admin)).status == 404
    # once EU adds her (she is of the organization: at once), a token of EU reaches EU
    new = {"name": "Mona", "email": "mona@example.com", "role": "agent"}
    assert (await client.post("/api/v1/users", json=new, headers=eu_admin)).status == 201
    hers = auth(await _issue(client, eu_admin, "agent", mona))
    space = await (await client.get("/api/v1/space", headers=hers)).json()
    assert space["name"] == "EU"


async def test_billing_reads_the_subscriptions_figures_until_it_stops_billing(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    people: dict[str, Any],
    staff: dict[str, Any],
) -> None:
    admin, billing = auth(people["admin"]), auth(staff["tokens"]["billing_admin"])
    await open_conversation(client, app, echo)
    await eventually(lambda: len(echo.sent) == 3)  # welcome, handover notice, away
    figures = await (await client.get("/api/v1/organization/usage", headers=billing)).json()
    (row,) = figures["items"]
    assert (row["space_id"], row["in"], row["out"]) == (app[DEFAULT_SPACE], 1, 3)
    assert figures["organization_id"] == staff["org"]
    assert figures["spaces"] == 1 and figures["channels"] == 2  # the default web chat, echo
    assert figures["members"] == 4  # Bea, Mona, Aldo, Billie
    url = f"/api/v1/organization/members/{staff['ids']['billing']}"
    assert (await client.patch(url, json={"role": "member"}, headers=admin)).status == 200
    assert (await client.get("/api/v1/usage", headers=billing)).status == 401
