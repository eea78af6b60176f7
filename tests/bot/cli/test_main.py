"""The `chancenter` command: help everywhere, clean errors, and `init` end to end.

Covers `bot.cli.hub`, `bot.workspace.bootstrap`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.cli.main import _parser, main
from bot.settings import Settings
from tests.channels.conftest import graph  # noqa: F401 - the fake Graph API fixture
from tests.fakes.graph import FakeGraph


@pytest.fixture(autouse=True)
def _keep_logging():
    """`main()` configures the root logger; give pytest's capture its handlers back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=60,
    )


def _commands(parser: argparse.ArgumentParser, path: list[str]) -> list[list[str]]:
    found = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, [*path, name])
    return found


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _commands(_parser(), [])
    assert ["tokens", "revoke"] in commands and ["orgs", "set-role"] in commands
    for command in commands:
        with pytest.raises(SystemExit) as exit:
            main([*command, "--help"])
        out = capsys.readouterr().out
        assert exit.value.code == 0, command
        assert out.startswith("usage: chancenter"), command
        if command:
            assert f"chancenter {' '.join(command)}" in out


def test_help_runs_as_a_program() -> None:
    result = run("--help")
    assert result.returncode == 0 and "ChanCenter" in result.stdout


def test_a_bad_setting_is_one_clear_line_not_a_traceback() -> None:
    result = run("db", "upgrade", env={"CHANCENTER_PORT": "eighty"})
    assert result.returncode == 2
    assert "CHANCENTER_PORT" in result.stderr and "eighty" in result.stderr
    assert "Traceback" not in result.stderr


def test_worker_without_redis_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker"]) == 2
    assert "CHANCENTER_REDIS_URL" in capsys.readouterr().err


def test_serve_with_a_missing_agent_folder_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["serve", "--agent", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    result = run("db", "upgrade", env={"CHANCENTER_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "x.db").exists()


async def test_init_prints_a_token_that_opens_the_api(tmp_path: Path, aiohttp_client) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    env = {"CHANCENTER_DATABASE_URL": url, "CHANCENTER_DATA_DIR": str(tmp_path)}
    result = run("init", "--admin-email", "ana@example.com", env=env)
    assert result.returncode == 0, result.stderr
    token = next(
        line.split()[-1] for line in result.stdout.splitlines() if line.startswith("API token")
    )
    second = run(
        "init", "--org", "Acme", "--space", "Support", "--admin-email", "ana@example.com", env=env
    )
    assert second.returncode == 0, second.stderr
    assert "space:        2" in second.stdout

    client: TestClient = await aiohttp_client(
        create_app(Settings(database_url=url, data_dir=tmp_path, secret_key="k"))
    )
    resp = await client.get("/api/v1/conversations", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200


async def test_channels_add_list_remove(tmp_path: Path, graph: FakeGraph) -> None:  # noqa: F811
    graph.tokens.add("WA-SECRET")
    graph.numbers["3003"]["tokens"].add("WA-SECRET")
    env = {
        "CHANCENTER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        "CHANCENTER_DATA_DIR": str(tmp_path),
        "CHANCENTER_PUBLIC_URL": "https://hub.example",
        "CHANCENTER_GRAPH_API_BASE": graph.url,
    }
    assert run("db", "upgrade", env=env).returncode == 0
    missing = run("channels", "add", "whatsapp", "--app-secret", "s", env=env)
    assert missing.returncode == 2
    assert "needs --verify-token, --phone-number-id, --access-token" in missing.stderr
    added = await asyncio.to_thread(  # the fake Graph API answers the check meanwhile
        run,
        "channels",
        "add",
        "whatsapp",
        "--app-secret",
        "s",
        "--verify-token",
        "v",
        "--phone-number-id",
        "3003",
        "--access-token",
        "WA-SECRET",
        env=env,
    )
    assert added.returncode == 0, added.stderr
    channel_id = added.stdout.splitlines()[0].split()[-1]
    assert f"webhook: https://hub.example/webhooks/{channel_id}" in added.stdout
    listed = run("channels", "list", env=env)
    assert f"{channel_id}\twhatsapp" in listed.stdout and "WA-SECRET" not in listed.stdout
    assert "Acme Support (+1 555-010-3003)" in listed.stdout
    assert run("channels", "remove", channel_id, env=env).returncode == 0
    gone = run("channels", "remove", channel_id, env=env)
    assert gone.returncode == 2 and "channels list" in gone.stderr


HEAVY = ("sqlalchemy", "aiohttp", "pydantic", "google", "slack_bolt", "aiogram", "yaml", "alembic")


def test_help_imports_nothing_heavy() -> None:
    """`--help` at every level answers before any framework is imported (issue #14)."""
    script = (
        "import io, sys\n"
        "from bot.cli.main import main\n"
        "for argv in (['--help'], ['users', 'list', '--help'], ['channels', 'add', '--help'],"
        " ['surveys', '--help'], ['serve', '--help']):\n"
        "    sys.stdout = io.StringIO()\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "sys.stdout = sys.__stdout__\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert "bot" in loaded and not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.fixture
def hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "CHANCENTER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        "CHANCENTER_DATA_DIR": str(tmp_path),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_output_is_the_answer_and_logs_wait_for_verbose(
    capsys: pytest.CaptureFixture[str], hub_env: dict[str, str]
) -> None:
    assert main(["init"]) == 0
    out, err = capsys.readouterr()
    assert "API token:" in out and err == ""  # no "created the default space" line
    assert main(["channels", "add", "webchat"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("connected webchat channel") and "webhook" not in out
    assert err == ""
    assert main(["--verbose", "channels", "add", "webchat"]) == 0
    out, err = capsys.readouterr()
    assert "level=info" not in out and 'msg="channel added"' in err
    assert main(["channels", "list", "-v"]) == 0
    assert capsys.readouterr().out.count("webchat") >= 3


def test_a_command_without_a_database_says_how_to_point_at_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHANCENTER_DATABASE_URL", raising=False)
    for command in (["users", "list"], ["channels", "list"], ["queue", "dead-letters"]):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert "CHANCENTER_DATABASE_URL" in err and str(tmp_path / "chancenter.db") in err
        assert "chancenter init" in err
    assert not (tmp_path / "chancenter.db").exists()
    assert main(["init"]) == 0  # init (like serve and db upgrade) creates it
    assert (tmp_path / "chancenter.db").exists()


def test_linking_an_unknown_user_suggests_adding_them(
    capsys: pytest.CaptureFixture[str], hub_env: dict[str, str]
) -> None:
    assert main(["init"]) == 0
    capsys.readouterr()
    assert main(["users", "link", "--user", "nobody@example.com"]) == 2
    err = capsys.readouterr().err
    assert "users add nobody@example.com --name" in err and "init" not in err


def test_init_and_channels_answer_json_for_scripts(
    capsys: pytest.CaptureFixture[str], hub_env: dict[str, str]
) -> None:
    assert main(["init", "--admin-email", "ana@example.com", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["token"].startswith("cc_") and created["email"] == "ana@example.com"
    assert main(["channels", "list", "--json"]) == 0
    (channel,) = json.loads(capsys.readouterr().out)["items"]
    assert channel["id"] == created["webchat_channel_id"] and channel["webhook_url"] is None
    assert main(["channels", "add", "webchat", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "webchat"
    assert main(["queue", "dead-letters", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"items": []}


def test_channels_set_changes_a_channel_and_list_shows_its_health(
    capsys: pytest.CaptureFixture[str], hub_env: dict[str, str]
) -> None:
    assert main(["init", "--json"]) == 0
    channel_id = json.loads(capsys.readouterr().out)["webchat_channel_id"]
    assert main(["channels", "list"]) == 0
    assert capsys.readouterr().out == f"{channel_id}\twebchat\tWeb chat\t-\tnothing in yet\n"

    set_ = ["channels", "set", channel_id]
    assert main([*set_, "--name", "Site chat", "--per-second", "5", "--json"]) == 0
    changed = json.loads(capsys.readouterr().out)
    assert (changed["name"], changed["settings"]) == ("Site chat", {"per_second": 5.0})
    assert changed["health"] == {"last_received_at": None, "last_send_error": None}
    assert main(["channels", "list"]) == 0
    assert "\tSite chat\tper_second=5.0\tnothing in yet" in capsys.readouterr().out
    assert main([*set_, "--clear", "per-second"]) == 0
    assert "settings:    -\n" in capsys.readouterr().out  # a record, as other commands print
    assert main(["channels", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["items"][0]["settings"] == {}

    assert main([*set_, "--groups", "true"]) == 2
    assert "webchat channels have no group chats" in capsys.readouterr().err
    assert main([*set_, "--per-second", "0"]) == 2
    assert "settings.per_second" in capsys.readouterr().err
    assert main([*set_]) == 2
    assert "say what to change" in capsys.readouterr().err
    assert main(["channels", "set", "webchat-nope", "--name", "x"]) == 2
    assert "channels list" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(
    capsys: pytest.CaptureFixture[str], hub_env: dict[str, str], tmp_path: Path
) -> None:
    """`chancenter surveys show 1 | head`: no BrokenPipeError traceback when head exits."""
    survey = tmp_path / "nps.yml"
    survey.write_text(
        "name: nps\nsteps:\n"
        + "".join(
            f"  - id: q{n}\n    type: question\n    text: Question {n}?\n    answer: text\n"
            for n in range(50)
        )
    )
    assert main(["db", "upgrade"]) == 0 and main(["surveys", "add", str(survey)]) == 0
    read, write = os.pipe()
    os.close(read)  # as `head` does once it has its lines
    try:
        result = subprocess.run(
            [sys.executable, "-m", "bot", "surveys", "show", "1"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **hub_env},
            timeout=60,
        )
    finally:
        os.close(write)
    assert result.stderr == "" and result.returncode == 141


def test_set_password_from_stdin_and_what_it_refuses(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    env = {"CHANCENTER_DATABASE_URL": url, "CHANCENTER_DATA_DIR": str(tmp_path)}
    assert run("init", "--admin-email", "ana@example.com", env=env).returncode == 0

    def set_password(email: str, password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", "users", "set-password", email, "--password-stdin"],
            input=password + "\n",
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=60,
        )

    done = set_password("ana@example.com", "a long enough password")
    assert done.returncode == 0 and "sign in at /app/login" in done.stdout
    short = set_password("ana@example.com", "short")
    assert short.returncode != 0 and "at least 10 characters" in short.stderr
    nobody = set_password("nobody@example.com", "a long enough password")
    assert nobody.returncode != 0 and "users add" in nobody.stderr


def test_signing_a_user_out_everywhere(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    env = {"CHANCENTER_DATABASE_URL": url, "CHANCENTER_DATA_DIR": str(tmp_path)}
    assert run("init", "--admin-email", "ana@example.com", env=env).returncode == 0
    with sqlite3.connect(tmp_path / "hub.db") as db:
        db.execute(
            "INSERT INTO dashboard_sessions (id, user_id, expires_at)"
            " SELECT 'a' || id, id, '2099-01-01' FROM users UNION ALL"
            " SELECT 'b' || id, id, '2099-01-01' FROM users"
        )
    done = run("users", "sign-out", "ANA@example.com", env=env)
    assert done.returncode == 0 and "2 dashboard sessions of ANA@example.com ended" in done.stdout
    with sqlite3.connect(tmp_path / "hub.db") as db:
        assert db.execute("SELECT count(*) FROM dashboard_sessions").fetchone() == (0,)
    nobody = run("users", "sign-out", "nobody@example.com", env=env)
    assert nobody.returncode != 0 and "users list" in nobody.stderr
