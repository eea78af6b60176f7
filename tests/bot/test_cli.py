"""The `chancenter` command: help everywhere, clean errors, and `init` end to end."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.cli import _parser, main
from bot.settings import Settings


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


def test_channels_add_list_remove(tmp_path: Path) -> None:
    env = {
        "CHANCENTER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        "CHANCENTER_DATA_DIR": str(tmp_path),
        "CHANCENTER_PUBLIC_URL": "https://hub.example",
    }
    missing = run("channels", "add", "whatsapp", "--app-secret", "s", env=env)
    assert missing.returncode == 2
    assert "needs --verify-token, --phone-number-id, --access-token" in missing.stderr
    added = run(
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
    channel_id = added.stdout.split()[4]
    assert f"webhook: https://hub.example/webhooks/{channel_id}" in added.stdout
    listed = run("channels", "list", env=env)
    assert f"{channel_id}\twhatsapp" in listed.stdout and "WA-SECRET" not in listed.stdout
    assert run("channels", "remove", channel_id, env=env).returncode == 0
    gone = run("channels", "remove", channel_id, env=env)
    assert gone.returncode == 2 and "channels list" in gone.stderr
