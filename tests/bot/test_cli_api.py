"""The admin command groups: each one is an in-process API call, rules and errors included."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from bot.cli import main


@pytest.fixture(autouse=True)
def _hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CHANCENTER_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    monkeypatch.setenv("CHANCENTER_DATA_DIR", str(tmp_path))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_fields_views_and_tags_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "fields", "add", "plan", "choice", "--option", "free")
    assert code == 0 and json.loads(out)["options"] == ["free"]
    code, _, err = cli(capsys, "fields", "add", "plan", "text")
    assert code == 2 and "already exists" in err  # the API's own error, one line
    code, out, _ = cli(
        capsys, "fields", "set", "1", "--label", "Plan", "--option", "free", "--option", "pro"
    )
    assert json.loads(out)["label"] == "Plan" and json.loads(out)["options"] == ["free", "pro"]
    assert cli(capsys, "fields", "list")[1].splitlines()[1].startswith("1\tplan\tPlan\tchoice")

    group = json.dumps({"all": [{"field": "fields.plan", "op": "is", "value": "pro"}]})
    code, out, _ = cli(capsys, "views", "create", "Pro", group)
    view = json.loads(out)["id"]
    code, _, err = cli(capsys, "views", "contacts", str(view))
    assert code == 0 and "0 in all" in err
    code, _, err = cli(
        capsys, "views", "create", "Bad", '{"all": [{"field": "nope", "op": "is", "value": 1}]}'
    )
    assert code == 2 and "nope" in err
    assert cli(capsys, "fields", "remove", "1")[1].strip() == "done"
    assert cli(capsys, "fields", "list")[2].startswith("(none)")


def test_organization_members_and_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "init", "--admin-email", "ana@example.com")[0] == 0
    code, out, _ = cli(
        capsys, "orgs", "add-member", "bo@example.com", "--name", "Bo", "--role", "billing_admin"
    )
    assert code == 0 and json.loads(out)["role"] == "billing_admin"
    code, _, err = cli(capsys, "orgs", "set-role", "1", "member")
    assert code == 2 and "at least one admin" in err
    members = json.loads(cli(capsys, "orgs", "show")[1])["members"]
    assert [(m["email"], m["role"]) for m in members] == [
        ("ana@example.com", "admin"),
        ("bo@example.com", "billing_admin"),
    ]
    code, out, _ = cli(capsys, "tokens", "create", "reports", "--role", "billing")
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
    assert code == 0 and json.loads(out)["name"] == "nps"
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


def test_dead_letters_are_listed_and_queued_again(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli(capsys, "queue", "dead-letters")[2].endswith("no dead letters\n")
    assert cli(capsys, "init")[0] == 0  # the schema, a space and its web-chat channel
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
