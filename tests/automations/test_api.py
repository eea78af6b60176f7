"""`/api/v1/automations` and `chancenter automations`: a wrong definition is a 422 naming
the path and stores nothing; agents read, managers write; `show` tells the truth about
what an automation names; runs say what became of the messages they sent."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.api.auth import create_token
from bot.cli.main import main
from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import (
    automation_runs,
    automation_timers,
    automations,
    conversations,
    messages,
    spaces,
)
from bot.workspace.bootstrap import create_space
from tests.conftest import count
from tests.fakes.echo_channel import EchoChannel
from tests.handlers.test_handover import say

API = "/api/v1/automations"
YAML = "application/yaml"
PRICING = """\
name: pricing-lead
description: People asking for prices are leads
trigger: {on: message_received}
conditions: {all: [{field: message.text, op: contains, value: price}]}
actions:
  - tag: lead
  - assign: {team: Sales}
"""
WELCOME: dict[str, Any] = {
    "name": "welcome",
    "trigger": {"on": "contact_created"},
    "actions": [{"send_message": "Hi {{contact.first_name}}!"}, {"tag": "new"}],
}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def tokens(app: Application) -> dict[str, dict[str, str]]:
    """A manager's and an agent's token in the default space (which has a Sales team),
    and an admin's of another space."""
    space = app[DEFAULT_SPACE]
    async with app[DB].write() as conn:
        manager = await create_token(conn, space, None, "m", "manager")
        agent = await create_token(conn, space, None, "a", "agent")
        other = await create_space(conn, "Rival", "Rival", default=False, webchat=False)
        stranger = await create_token(conn, other.space_id, None, "r", "admin")
    return {"manager": auth(manager), "agent": auth(agent), "stranger": auth(stranger)}


@pytest.fixture
async def manager(client: TestClient, tokens: dict[str, dict[str, str]]) -> dict[str, str]:
    resp = await client.post("/api/v1/teams", json={"name": "Sales"}, headers=tokens["manager"])
    assert resp.status == 201, await resp.text()
    return tokens["manager"]


async def add(client: TestClient, headers: dict[str, str], definition: str | dict[str, Any]):
    if isinstance(definition, str):
        return await client.post(API, data=definition, headers={**headers, "Content-Type": YAML})
    return await client.post(API, json=definition, headers=headers)


async def added(client: TestClient, headers: dict[str, str], definition: Any) -> int:
    resp = await add(client, headers, definition)
    assert resp.status == 201, await resp.text()
    return int((await resp.json())["id"])


async def version(app: Application) -> int:
    async with app[DB].read() as conn:
        query = sa.select(spaces.c.automations_version).where(spaces.c.id == app[DEFAULT_SPACE])
        return int((await conn.execute(query)).scalar_one())


async def test_add_from_yaml_and_json_then_list_and_show(
    client: TestClient, app: Application, manager: dict[str, str]
) -> None:
    before = await version(app)
    resp = await add(client, manager, PRICING)  # `on:` unquoted: a key, not YAML's `true`
    assert resp.status == 201, await resp.text()
    pricing = await resp.json()
    assert pricing["name"] == "pricing-lead"
    assert await version(app) == before + 1  # the workers compile the space again
    welcome = await added(client, manager, {**WELCOME, "enabled": False})

    listed = (await (await client.get(API, headers=manager)).json())["items"]
    assert [(a["name"], a["trigger"], a["enabled"], a["runs"]) for a in listed] == [
        ("pricing-lead", "message_received", True, 0),
        ("welcome", "contact_created", False, 0),
    ]
    shown = await (await client.get(f"{API}/{pricing['id']}", headers=manager)).json()
    assert shown["enabled"] is True and shown["disabled_reason"] is None
    assert shown["definition"]["trigger"] == {"on": "message_received"}
    assert shown["definition"]["actions"] == [{"tag": "lead"}, {"assign": {"team": "Sales"}}]
    assert shown["definition"]["enabled"] is True and shown["created_at"]
    shown = await (await client.get(f"{API}/{welcome}", headers=manager)).json()
    assert shown["definition"]["enabled"] is False

    again = await add(client, manager, PRICING)
    assert again.status == 409 and "pricing-lead" in (await again.json())["detail"]
    assert await count(app, automations) == 2


BAD: list[tuple[str, Any, str]] = [
    (
        "two keys in one action",
        {**WELCOME, "actions": [{"tag": "a"}, {"tag": "b", "untag": "c"}]},
        "actions[1]: an action is exactly one of",
    ),
    (
        "assign names nobody",
        {**WELCOME, "actions": [{"tag": "a"}, {"assign": {}}]},
        "actions[1].assign: assign names exactly one of user",
    ),
    (
        "unknown team",
        {**WELCOME, "actions": [{"tag": "a"}, {"assign": {"team": "Support"}}]},
        "actions[1].assign.team: no team 'Support' in this space",
    ),
    (
        "unknown field",
        {**WELCOME, "actions": [{"set_field": {"plan": "pro"}}]},
        "actions[0].set_field: no custom field 'plan'",
    ),
    ("unknown trigger", {**WELCOME, "trigger": {"on": "sunrise"}}, "trigger"),
    ("no actions", {**WELCOME, "actions": []}, "actions"),
    ("not a mapping", ["welcome"], "mapping"),
    (
        "YAML naming an unknown survey",
        "name: s\ntrigger: {on: message_received}\nactions:\n  - start_survey: nps\n",
        "actions[0].start_survey: no survey 'nps'",
    ),
]


@pytest.mark.parametrize(("case", "definition", "detail"), BAD, ids=[b[0] for b in BAD])
async def test_a_wrong_definition_is_a_422_naming_the_path_and_stores_nothing(
    client: TestClient,
    app: Application,
    manager: dict[str, str],
    case: str,
    definition: Any,
    detail: str,
) -> None:
    before = await version(app)
    resp = await add(client, manager, definition)
    assert resp.status == 422, (case, await resp.text())
    assert resp.content_type == "application/problem+json"
    assert detail in (await resp.json())["detail"]
    assert await count(app, automations) == 0
    assert await version(app) == before


async def test_a_body_that_is_not_json_or_yaml_is_a_400(
    client: TestClient, manager: dict[str, str]
) -> None:
    resp = await client.post(API, data=b"{nope", headers={**manager, "Content-Type": "x/y"})
    assert resp.status == 400 and "application/yaml" in (await resp.json())["detail"]


async def test_agents_read_and_only_managers_write(
    client: TestClient, tokens: dict[str, dict[str, str]], manager: dict[str, str]
) -> None:
    agent = tokens["agent"]
    automation_id = await added(client, manager, WELCOME)
    assert (await client.get(API, headers=agent)).status == 200
    assert (await client.get(f"{API}/{automation_id}", headers=agent)).status == 200
    assert (await client.get(f"{API}/{automation_id}/runs", headers=agent)).status == 200
    refused = [
        await add(client, agent, {**WELCOME, "name": "other"}),
        await client.patch(f"{API}/{automation_id}", json={"enabled": False}, headers=agent),
        await client.delete(f"{API}/{automation_id}", headers=agent),
    ]
    assert [r.status for r in refused] == [403, 403, 403]


async def test_another_space_sees_nothing(
    client: TestClient, tokens: dict[str, dict[str, str]], manager: dict[str, str]
) -> None:
    stranger = tokens["stranger"]
    automation_id = await added(client, manager, WELCOME)
    assert (await (await client.get(API, headers=stranger)).json())["items"] == []
    url = f"{API}/{automation_id}"
    answers = [
        await client.get(url, headers=stranger),
        await client.get(f"{url}/runs", headers=stranger),
        await client.patch(url, json={"enabled": False}, headers=stranger),
        await client.delete(url, headers=stranger),
    ]
    assert [r.status for r in answers] == [404, 404, 404, 404]
    assert (await client.get(url, headers=manager)).status == 200


async def test_disable_enable_and_edit(
    client: TestClient, app: Application, manager: dict[str, str]
) -> None:
    view = await client.post(
        "/api/v1/views", json={"name": "all", "filter": {"all": []}}, headers=manager
    )
    weekly = {
        "name": "weekly",
        "trigger": {"on": "schedule", "cron": "0 9 * * mon", "view_id": (await view.json())["id"]},
        "actions": [{"tag": "weekly"}],
    }
    automation_id = await added(client, manager, weekly)
    url = f"{API}/{automation_id}"
    mine = automation_timers.c.automation_id == automation_id
    assert await count(app, automation_timers, mine) == 1  # its next round

    before = await version(app)
    off = await (await client.patch(url, json={"enabled": False}, headers=manager)).json()
    assert off["enabled"] is False and off["definition"]["enabled"] is False
    assert await count(app, automation_timers, mine) == 0
    assert await version(app) == before + 1
    on = await (await client.patch(url, json={"enabled": True}, headers=manager)).json()
    assert on["enabled"] is True and on["disabled_reason"] is None
    assert await count(app, automation_timers, mine) == 1

    # a new definition: validated, its name unique, its trigger in the row
    await added(client, manager, WELCOME)
    taken = await client.patch(url, json={"definition": WELCOME}, headers=manager)
    assert taken.status == 409
    wrong = {**weekly, "actions": [{"assign": {"team": "Nobody"}}]}
    resp = await client.patch(url, json={"definition": wrong}, headers=manager)
    assert resp.status == 422
    assert "actions[0].assign.team: no team 'Nobody'" in (await resp.json())["detail"]
    edited = {**WELCOME, "name": "hello", "enabled": False}
    resp = await client.patch(url, json={"definition": edited}, headers=manager)
    shown = await resp.json()
    assert resp.status == 200, shown
    assert (shown["name"], shown["trigger"], shown["enabled"]) == (
        "hello",
        "contact_created",
        False,
    )
    assert await count(app, automation_timers, mine) == 0  # no schedule any more
    resp = await client.patch(url, json={"colour": "red"}, headers=manager)
    assert resp.status == 400


async def test_show_disables_an_automation_whose_team_is_gone(
    client: TestClient, app: Application, manager: dict[str, str]
) -> None:
    automation_id = await added(client, manager, PRICING)
    teams = (await (await client.get("/api/v1/teams", headers=manager)).json())["items"]
    before = await version(app)
    assert (await client.delete(f"/api/v1/teams/{teams[0]['id']}", headers=manager)).status == 204
    assert await version(app) == before + 1  # the workers check the references again

    url = f"{API}/{automation_id}"
    shown = await (await client.get(url, headers=manager)).json()
    assert shown["enabled"] is False and shown["definition"]["enabled"] is False
    assert shown["disabled_reason"] == "actions[1].assign.team: no team 'Sales' in this space"
    refused = await client.patch(url, json={"enabled": True}, headers=manager)
    assert refused.status == 422
    assert "no team 'Sales'" in (await refused.json())["detail"]
    assert (await client.post("/api/v1/teams", json={"name": "Sales"}, headers=manager)).ok
    on = await (await client.patch(url, json={"enabled": True}, headers=manager)).json()
    assert on["enabled"] is True and on["disabled_reason"] is None


@pytest.mark.parametrize(
    ("what", "create", "remove"),
    [
        ("field", ("/api/v1/fields", {"key": "plan", "type": "text"}), "/api/v1/fields/{id}"),
        ("view", ("/api/v1/views", {"name": "v", "filter": {"all": []}}), "/api/v1/views/{id}"),
        (
            "shortcut",
            ("/api/v1/shortcuts", {"name": "s", "text": "hi"}),
            "/api/v1/shortcuts/{id}",
        ),
    ],
)
async def test_deleting_what_automations_may_name_bumps_the_version(
    client: TestClient,
    app: Application,
    manager: dict[str, str],
    what: str,
    create: tuple[str, dict[str, Any]],
    remove: str,
) -> None:
    made = await client.post(create[0], json=create[1], headers=manager)
    assert made.status in (200, 201), await made.text()
    before = await version(app)
    gone = await client.delete(remove.format(id=(await made.json())["id"]), headers=manager)
    assert gone.status == 204
    assert await version(app) == before + 1, what


async def test_runs_newest_first_with_the_fate_of_their_messages(
    client: TestClient, app: Application, echo: EchoChannel, manager: dict[str, str]
) -> None:
    await say(client, app, echo, "hello")
    automation_id = await added(client, manager, WELCOME)
    async with app[DB].write() as conn:
        conv = (await conn.execute(sa.select(conversations))).one()
        refused = await conn.execute(
            messages.insert()
            .values(
                space_id=conv.space_id,
                conversation_id=conv.id,
                channel_id=conv.channel_id,
                direction="out",
                dedupe_key="w1:a1:send:0",
                parts=[{"type": "text", "text": "Hi!"}],
                status="failed",
                error="the contact blocked the bot",
            )
            .returning(messages.c.id)
        )
        message_id = refused.scalar_one()
        run = {
            "automation_id": automation_id,
            "space_id": conv.space_id,
            "trigger": "contact_created",
            "contact_id": conv.contact_id,
            "conversation_id": conv.id,
        }
        steps = [
            {"action": "send_message", "outcome": "queued", "message": "w1:a1:send:0"},
            {"action": "tag", "outcome": "tagged new"},
        ]
        await conn.execute(
            automation_runs.insert(),
            [
                {**run, "status": "done", "steps": steps},
                {**run, "status": "failed", "steps": [{"action": "tag", "error": "boom"}]},
            ],
        )
    url = f"{API}/{automation_id}/runs"
    page = await (await client.get(url, headers=manager)).json()
    newest, oldest = page["items"]
    assert newest["status"] == "failed" and newest["steps"] == [{"action": "tag", "error": "boom"}]
    assert oldest["steps"][0] == {
        **steps[0],
        "message_id": message_id,
        "message_status": "failed",
        "message_error": "the contact blocked the bot",
    }
    assert oldest["steps"][1] == steps[1]
    assert (oldest["trigger"], oldest["contact_id"], oldest["conversation_id"]) == (
        "contact_created",
        conv.contact_id,
        conv.id,
    )
    assert page["next_before"] is None
    first = await (await client.get(url, params={"limit": "1"}, headers=manager)).json()
    assert [r["id"] for r in first["items"]] == [newest["id"]]
    rest = await client.get(url, params={"before": str(first["next_before"])}, headers=manager)
    assert [r["id"] for r in (await rest.json())["items"]] == [oldest["id"]]
    listed = (await (await client.get(API, headers=manager)).json())["items"]
    assert listed[0]["runs"] == 2

    assert (await client.delete(f"{API}/{automation_id}", headers=manager)).status == 204
    assert await count(app, automation_runs) == 0
    assert (await client.get(f"{API}/{automation_id}", headers=manager)).status == 404
    assert (await client.get(url, headers=manager)).status == 404


# -- the command line ------------------------------------------------------------------


@pytest.fixture
def hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("CHANCENTER_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    monkeypatch.setenv("CHANCENTER_DATA_DIR", str(tmp_path))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    yield
    root.handlers[:], root.level = handlers, level


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("hub_env")
def test_automations_from_the_command_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli(capsys, "teams", "create", "Sales")[0] == 0
    pricing = tmp_path / "pricing.yml"
    pricing.write_text(PRICING)
    code, out, err = cli(capsys, "automations", "add", str(pricing), "--json")
    assert code == 0, err
    assert json.loads(out) == {"id": 1, "name": "pricing-lead"}
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**WELCOME, "actions": [{"assign": {"team": "Support"}}]}))
    code, _, err = cli(capsys, "automations", "add", str(broken))
    assert code == 2 and "actions[0].assign.team: no team 'Support'" in err

    assert cli(capsys, "automations", "list")[1].splitlines()[1].startswith("1\tpricing-lead")
    code, out, _ = cli(capsys, "automations", "disable", "1", "--json")
    assert code == 0 and json.loads(out)["enabled"] is False
    code, out, _ = cli(capsys, "automations", "enable", "1", "--json")
    assert code == 0 and json.loads(out)["enabled"] is True
    code, out, _ = cli(capsys, "automations", "show", "1", "--json")
    assert json.loads(out)["definition"]["trigger"] == {"on": "message_received"}
    code, out, _ = cli(capsys, "automations", "runs", "1", "--json")
    assert code == 0 and json.loads(out)["items"] == []
    assert cli(capsys, "automations", "remove", "1")[1].strip() == "done"
    code, out, err = cli(capsys, "automations", "remove", "1")
    assert (code, out) == (2, "") and "no automation 1" in err


def test_every_automations_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("list", "add", "show", "enable", "disable", "runs", "remove"):
        with pytest.raises(SystemExit) as done:
            main(["automations", command, "--help"])
        assert done.value.code == 0
        assert "usage: chancenter automations" in capsys.readouterr().out
