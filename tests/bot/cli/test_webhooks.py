"""`chancenter webhooks ...`: each command is its `/api/v1/webhooks` call."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook

from bot.cli.webhooks import EVENTS
from bot.workspace import events
from tests.bot.cli.test_broadcasts import cli, helped, hub_env  # noqa: F401

SUBCOMMANDS = (
    "add",
    "list",
    "show",
    "deliveries",
    "retry",
    "test",
    "enable",
    "disable",
    "rotate-secret",
    "remove",
)


def test_the_command_line_knows_the_events() -> None:
    assert EVENTS == events.EVENTS


def test_every_webhooks_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert all(name in helped(capsys, "webhooks") for name in SUBCOMMANDS)
    for name in SUBCOMMANDS:
        assert helped(capsys, "webhooks", name).startswith(f"usage: chancenter webhooks {name}")
    add = helped(capsys, "webhooks", "add")
    assert "--event" in add and "message.received" in add and "--description" in add
    assert "--failed" in helped(capsys, "webhooks", "deliveries")


class _Hooks(BaseHTTPRequestHandler):
    seen: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"thanks")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hooks() -> Iterator[str]:
    """A receiver in a thread: the command line runs its own event loop."""
    _Hooks.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    server.shutdown()
    server.server_close()


@pytest.mark.usefixtures("hub_env")
def test_webhooks_from_the_command_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, hooks: str
) -> None:
    assert cli(capsys, "init")[0] == 0
    code, _, err = cli(capsys, "webhooks", "add", hooks, "--event", "*")
    assert code == 2 and "CHANCENTER_WEBHOOKS_ALLOW_PRIVATE=true" in err  # not on by default
    monkeypatch.setenv("CHANCENTER_WEBHOOKS_ALLOW_PRIVATE", "true")
    with pytest.raises(SystemExit):
        cli(capsys, "webhooks", "add", hooks, "--event", "message.eaten")
    assert "invalid choice: 'message.eaten'" in capsys.readouterr().err
    code, out, err = cli(
        capsys,
        "webhooks",
        "add",
        hooks,
        "--event",
        "message.received",
        "--event",
        "conversation.closed",
        "--description",
        "CRM",
        "--json",
    )
    assert code == 0, err
    made = json.loads(out)
    webhook = str(made["id"])
    assert made["events"] == ["conversation.closed", "message.received"]
    code, out, _ = cli(capsys, "webhooks", "list")
    assert code == 0 and hooks in out and "whsec_" not in out

    code, out, err = cli(capsys, "webhooks", "test", webhook, "--json")
    assert code == 0, err
    tested = json.loads(out)
    assert tested["status"] == "delivered" and tested["log"][0]["response"] == "thanks"
    ((headers, body),) = _Hooks.seen
    assert Webhook(made["secret"]).verify(body, headers)["type"] == "webhook.test"

    code, out, _ = cli(capsys, "webhooks", "deliveries", webhook, "--failed", "--json")
    assert code == 0 and json.loads(out)["items"] == []
    code, out, _ = cli(capsys, "webhooks", "retry", webhook, str(tested["id"]), "--json")
    assert code == 0 and json.loads(out)["status"] == "pending"  # the hub delivers it
    assert json.loads(cli(capsys, "webhooks", "disable", webhook, "--json")[1])["enabled"] is False
    assert json.loads(cli(capsys, "webhooks", "enable", webhook, "--json")[1])["enabled"] is True
    rotated = json.loads(cli(capsys, "webhooks", "rotate-secret", webhook, "--json")[1])
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != made["secret"]
    assert cli(capsys, "webhooks", "remove", webhook)[0] == 0
    code, _, err = cli(capsys, "webhooks", "show", webhook)
    assert code != 0 and f"no webhook {webhook}" in err
