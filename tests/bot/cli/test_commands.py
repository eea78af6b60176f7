"""The admin command groups: each one is an in-process API call, rules and errors included.

Covers `bot.cli.args`, `bot.cli.call`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from bot.cli.main import main


@pytest.fixture(autouse=True)
def _hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("CHANCENTER_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    monkeypatch.setenv("CHANCENTER_DATA_DIR", str(tmp_path))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    assert main(["db", "upgrade"]) == 0  # commands need a database: they never create one
    capsys.readouterr()
    yield
    root.handlers[:], root.level = handlers, level


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_fields_views_and_tags_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "fields", "add", "plan", "choice", "--option", "free", "--json")
    assert code == 0 and json.loads(out)["options"] == ["free"]
    code, _, err = cli(capsys, "fields", "add", "plan", "text")
    assert code == 2 and "already exists" in err  # the API's own error, one line
    code, out, _ = cli(
        capsys,
        "fields",
        "set",
        "1",
        "--label",
        "Plan",
        "--option",
        "free",
        "--option",
        "pro",
        "--json",
    )
    assert json.loads(out)["label"] == "Plan" and json.loads(out)["options"] == ["free", "pro"]
    assert cli(capsys, "fields", "list")[1].splitlines()[1].startswith("1\tplan\tPlan\tchoice")

    group = json.dumps({"all": [{"field": "fields.plan", "op": "is", "value": "pro"}]})
    code, out, _ = cli(capsys, "views", "create", "Pro", group, "--json")
    view = json.loads(out)["id"]
    code, out, err = cli(capsys, "views", "contacts", str(view))
    assert code == 0 and "0 in all" in out and "(none)" in err
    code, _, err = cli(
        capsys, "views", "create", "Bad", '{"all": [{"field": "nope", "op": "is", "value": 1}]}'
    )
    assert code == 2 and "nope" in err
    assert cli(capsys, "fields", "remove", "1")[1].strip() == "done"
    assert cli(capsys, "fields", "list")[2].startswith("(none)")


def test_organization_members_and_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "init", "--admin-email", "ana@example.com")[0] == 0
    code, out, _ = cli(
        capsys,
        "orgs",
        "add-member",
        "bo@example.com",
        "--name",
        "Bo",
        "--role",
        "billing_admin",
        "--json",
    )
    assert code == 0 and json.loads(out)["role"] == "billing_admin"
    code, _, err = cli(capsys, "orgs", "set-role", "1", "member")
    assert code == 2 and "at least one admin" in err
    members = json.loads(cli(capsys, "orgs", "show", "--json")[1])["members"]
    assert [(m["email"], m["role"]) for m in members] == [
        ("ana@example.com", "admin"),
        ("bo@example.com", "billing_admin"),
    ]
    code, out, _ = cli(capsys, "tokens", "create", "reports", "--role", "billing", "--json")
    assert json.loads(out)["token"].startswith("cc_")
    listed = cli(capsys, "tokens", "list")[1]
    assert "reports" in listed and "cc_" not in listed
    assert cli(capsys, "teams", "create", "Sales")[0] == 0
    code, _, err = cli(capsys, "teams", "add-member", "1", "99")
    assert code == 2 and "no user 99" in err


def test_surveys_from_the_command_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    survey = tmp_path / "nps.yml"
    survey.write_text(
        "name: nps\nsteps:\n  - id: score\n    type: question\n    text: From 0 to 10?\n"
        "    answer: number\n    min: 0\n    max: 10\n"
    )
    code, out, _ = cli(capsys, "surveys", "add", str(survey))
    assert code == 0 and "name: nps" in out.splitlines()
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "name: x\nsteps:\n  - id: q\n    type: question\n    text: Colour\n    answer: colour\n"
    )
    code, _, err = cli(capsys, "surveys", "add", str(broken))
    assert code == 2 and "step 'q' (steps.0), answer" in err
    assert cli(capsys, "surveys", "list")[1].splitlines()[1].startswith("1\tnps")
    code, out, _ = cli(capsys, "surveys", "results", "1", "--csv")
    assert code == 0 and out.splitlines() == [
        "contact_id,contact_name,status,started_at,finished_at,score"
    ]
    code, _, err = cli(capsys, "surveys", "send", "1", "--contact-id", "99")
    assert code == 0  # nobody to reach: reported, not an error
    assert cli(capsys, "surveys", "remove", "1")[1].strip() == "done"
    code, out, err = cli(capsys, "surveys", "remove", "1", "--json")
    assert (code, out) == (2, "") and "no survey 1" in err


def test_dead_letters_are_listed_and_queued_again(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli(capsys, "init")[0] == 0  # a space and its web-chat channel
    assert cli(capsys, "queue", "dead-letters")[2].endswith("no dead letters\n")
    with sqlite3.connect(tmp_path / "hub.db") as db:
        space, channel = db.execute("SELECT space_id, id FROM channels").fetchone()
        db.execute("INSERT INTO contacts (space_id, name) VALUES (?, 'x')", (space,))
        db.execute(
            "INSERT INTO identities (contact_id, channel_id, external_id) VALUES (1, ?, 'v')",
            (channel,),
        )
        db.execute(
            "INSERT INTO conversations (space_id, contact_id, channel_id, identity_id)"
            " VALUES (?, 1, ?, 1)",
            (space, channel),
        )
        db.execute(
            "INSERT INTO work_items (conversation_id, payload, status, attempts, last_error)"
            " VALUES (1, '{}', 'dead', 5, 'ValueError: broken')"
        )
    code, out, _ = cli(capsys, "queue", "dead-letters", "--retry")
    assert code == 0 and "conversation 1\t5 attempts\tValueError: broken" in out
    with sqlite3.connect(tmp_path / "hub.db") as db:
        assert db.execute("SELECT status, attempts FROM work_items").fetchone() == ("pending", 0)


def test_emails_stand_for_users_wherever_an_id_does(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "init", "--admin-email", "ana@example.com")[0] == 0
    assert cli(capsys, "orgs", "add-member", "bo@example.com", "--name", "Bo")[0] == 0
    code, out, err = cli(capsys, "orgs", "set-role", "Bo@Example.com", "admin", "--json")
    assert code == 0, err
    assert (json.loads(out)["email"], json.loads(out)["role"]) == ("bo@example.com", "admin")
    code, _, err = cli(capsys, "orgs", "set-role", "nobody@example.com", "admin")
    assert code == 2 and "no member nobody@example.com in this organization" in err
    assert cli(capsys, "users", "add", "cy@example.com", "--name", "Cy")[0] == 0
    code, out, _ = cli(capsys, "users", "set", "cy@example.com", "--capacity", "3", "--json")
    assert code == 0 and json.loads(out)["capacity"] == 3
    cy = json.loads(out)["id"]
    assert cli(capsys, "users", "set", str(cy), "--capacity", "4")[0] == 0  # ids still work
    assert cli(capsys, "teams", "create", "Sales")[0] == 0
    assert cli(capsys, "teams", "add-member", "1", "cy@example.com")[0] == 0
    (team,) = json.loads(cli(capsys, "teams", "list", "--json")[1])["items"]
    assert cy in [m if isinstance(m, int) else m["id"] for m in team["members"]]
    assert cli(capsys, "teams", "remove-member", "1", "cy@example.com")[0] == 0
    code, _, err = cli(capsys, "users", "set", "bo@example.com", "--capacity", "1")
    assert code == 2 and "no user bo@example.com in this space" in err and "users add" in err
    assert cli(capsys, "orgs", "remove-member", "bo@example.com")[0] == 0


def test_a_manager_issues_a_token_for_someone_by_email(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli(capsys, "init", "--admin-email", "ana@example.com")[0] == 0
    assert cli(capsys, "users", "add", "cy@example.com", "--name", "Cy")[0] == 0
    code, out, err = cli(capsys, "tokens", "create", "cy", "--user", "cy@example.com", "--json")
    assert code == 0, err
    assert json.loads(out)["token"].startswith("cc_")
    with sqlite3.connect(tmp_path / "hub.db") as db:
        (owner,) = db.execute("SELECT user_id FROM api_tokens WHERE name = 'cy'").fetchone()
        (cy,) = db.execute("SELECT id FROM users WHERE email = 'cy@example.com'").fetchone()
    assert owner == cy
    code, _, err = cli(capsys, "tokens", "create", "x", "--user", "nobody@example.com")
    assert code == 2 and "no user nobody@example.com in this space" in err


def test_space_settings_can_be_cleared(capsys: pytest.CaptureFixture[str]) -> None:
    hours = '{"days": {"mon": ["09:00", "18:00"]}}'
    code, out, err = cli(
        capsys, "spaces", "set", "--business-hours", hours, "--away-text", "Closed", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["business_hours"]["days"] == {"mon": ["09:00", "18:00"]}
    code, out, err = cli(
        capsys, "spaces", "set", "--clear", "business_hours", "--clear", "away_text", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["business_hours"] is None and json.loads(out)["away_text"] is None
    with pytest.raises(SystemExit):
        main(["spaces", "set", "--clear", "name"])
    assert "invalid choice: 'name'" in capsys.readouterr().err


def test_survey_results_show_the_counts_and_completion_rate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    survey = tmp_path / "nps.yml"
    survey.write_text(
        "name: nps\nsteps:\n  - id: score\n    type: question\n    text: From 0 to 10?\n"
        "    answer: number\n"
    )
    assert cli(capsys, "init")[0] == 0
    assert cli(capsys, "surveys", "add", str(survey))[0] == 0
    with sqlite3.connect(tmp_path / "hub.db") as db:
        space, channel = db.execute("SELECT space_id, id FROM channels").fetchone()
        for n, status in enumerate(("completed", "in_progress", "completed", "expired"), 1):
            db.execute("INSERT INTO contacts (space_id, name) VALUES (?, ?)", (space, f"c{n}"))
            db.execute(
                "INSERT INTO identities (contact_id, channel_id, external_id) VALUES (?, ?, ?)",
                (n, channel, f"v{n}"),
            )
            db.execute(
                "INSERT INTO conversations (space_id, contact_id, channel_id, identity_id)"
                " VALUES (?, ?, ?, ?)",
                (space, n, channel, n),
            )
            db.execute(
                "INSERT INTO flow_runs (survey_id, space_id, conversation_id, contact_id, status,"
                " answers) VALUES (1, ?, ?, ?, ?, ?)",
                (space, n, n, status, '{"score": 9}' if status == "completed" else "{}"),
            )
    code, out, _ = cli(capsys, "surveys", "results", "1")
    assert code == 0
    assert "completion rate: 50%" in out
    assert "counts: sent 0, in_progress 1, completed 2, expired 1, stopped 0" in out
    assert out.splitlines()[0].startswith("id\tcontact_id\tcontact_name\tconversation_id\tstatus")
    body = json.loads(cli(capsys, "surveys", "results", "1", "--json")[1])
    assert body["completion_rate"] == 0.5 and body["counts"]["completed"] == 2


def test_tables_for_people_json_for_scripts(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "spaces", "show")
    assert code == 0 and "name:" in out and not out.startswith("{")
    assert json.loads(cli(capsys, "spaces", "show", "--json")[1])["name"] == "Default"
    assert cli(capsys, "tags", "list", "--json")[1:] == ('{\n  "items": []\n}\n', "")
    assert cli(capsys, "init")[0] == 0
    assert cli(capsys, "users", "list")[1].startswith("id\tname\temail")


def test_slack_integration_from_the_command_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = cli(capsys, "integrations", "slack-install-link")
    assert code == 2 and "CHANCENTER_SLACK_CLIENT_ID" in err
    monkeypatch.setenv("CHANCENTER_SLACK_API_BASE", "http://127.0.0.1:9/api/")  # nobody there
    code, _, err = cli(
        capsys, "integrations", "slack", "--bot-token", "xoxb-1", "--signing-secret", "s",
        "--inbox-channel", "CINBOX",
    )  # fmt: skip
    assert code == 2 and "Slack could not be reached" in err
    assert cli(capsys, "integrations", "list")[2].startswith("(none)")
    code, _, err = cli(capsys, "integrations", "remove-slack")
    assert code == 2 and "no Slack workspace" in err
    monkeypatch.setenv("CHANCENTER_SLACK_CLIENT_ID", "1.2")
    monkeypatch.setenv("CHANCENTER_SLACK_CLIENT_SECRET", "c")
    monkeypatch.setenv("CHANCENTER_SLACK_SIGNING_SECRET", "s")
    code, out, _ = cli(capsys, "integrations", "slack-install-link", "--json")
    assert code == 0 and "/slack/install?space=1&expires=" in json.loads(out)["url"]
