"""`chancenter broadcasts ...`: every subcommand has help, `create`'s flat flags become the
API's nested request, `show --watch` follows a broadcast until it stops, and a round trip
through the in-process API.

Covers `bot.cli.broadcasts`, `bot.cli.watch`, `bot.cli.content`.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from bot.cli.broadcasts import MESSENGER_TAGS, RECIPIENT_STATUSES, _new_broadcast
from bot.cli.main import main
from bot.cli.watch import watch
from broadcasts import definition

SUBCOMMANDS = ("create", "list", "show", "start", "pause", "resume", "cancel", "recipients")


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


def helped(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    with pytest.raises(SystemExit) as exit:
        main([*command, "--help"])
    assert exit.value.code == 0, command
    return capsys.readouterr().out


def test_every_broadcasts_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert all(name in helped(capsys, "broadcasts") for name in SUBCOMMANDS)
    for name in SUBCOMMANDS:
        out = helped(capsys, "broadcasts", name)
        assert out.startswith(f"usage: chancenter broadcasts {name}"), name
    create = helped(capsys, "broadcasts", "create")
    for flag in (
        "--channel",
        "--view-id",
        "--contact",
        "--text",
        "--shortcut-id",
        "--template",
        "--language",
        "--param",
        "--media-url",
        "--media-type",
        "--quick-reply",
        "--tag",
        "--send-at",
        "--keep-person-chats",
    ):
        assert flag in create, flag
    assert "20% off" in create
    assert "--watch" in helped(capsys, "broadcasts", "show")
    recipients = helped(capsys, "broadcasts", "recipients")
    assert "--csv" in recipients and "--status" in recipients


def test_the_command_line_knows_the_api_lists() -> None:
    assert RECIPIENT_STATUSES == definition.RECIPIENT_STATUSES
    assert set(MESSENGER_TAGS) == set(definition.MESSENGER_TAGS)


def test_create_flags_become_the_request() -> None:
    assert _new_broadcast(
        {
            "name": "Offer",
            "channel_id": "wa1",
            "contact_ids": [1, 2],
            "template": "december",
            "language": "pt_PT",
            "params": ["Ana", "20%"],
            "send_at": "2026-12-10T09:00",
            "keep_person_chats": True,
        }
    ) == {
        "name": "Offer",
        "channel_id": "wa1",
        "contact_ids": [1, 2],
        "send_at": "2026-12-10T09:00",
        "message": {
            "template": {"name": "december", "params": ["Ana", "20%"], "language": "pt_PT"}
        },
        "settings": {"skip_with_person": False},
    }
    body = _new_broadcast(
        {
            "name": "Photos",
            "channel_id": "tg1",
            "view_id": 3,
            "text": "Look",
            "media_urls": ["https://x/a.jpg", "https://x/b.mp4", "https://x/c.mp4"],
            "media_types": ["image", "video"],
            "quick_replies": ["Yes", "No thanks=NO"],
            "keep_person_chats": False,
        }
    )
    assert body == {
        "name": "Photos",
        "channel_id": "tg1",
        "view_id": 3,
        "message": {
            "text": "Look",
            "media": [
                {"type": "image", "url": "https://x/a.jpg"},
                {"type": "video", "url": "https://x/b.mp4"},
                {"type": "video", "url": "https://x/c.mp4"},
            ],
            "quick_replies": [
                {"title": "Yes", "payload": "Yes"},
                {"title": "No thanks", "payload": "NO"},
            ],
        },
    }
    definition.NewBroadcast.model_validate(body)  # what the API takes


def _counts(**given: int) -> dict[str, int]:
    counts = {status: 0 for status in RECIPIENT_STATUSES} | given
    return {**counts, "responded": 0, "total": sum(counts.values())}


async def test_watch_polls_until_the_broadcast_stops_moving() -> None:
    answers = [
        {"id": 1, "name": "Offer", "status": "running", "counts": _counts(queued=3)},
        {"id": 1, "name": "Offer", "status": "running", "counts": _counts(queued=1, sent=2)},
        {"id": 1, "name": "Offer", "status": "completed", "counts": _counts(sent=2, failed=1)},
        {"id": 1, "name": "Offer", "status": "completed", "counts": _counts()},  # never read
    ]
    polls: list[int] = []

    async def fetch() -> Any:
        polls.append(1)
        return answers[len(polls) - 1]

    bar = io.StringIO()
    last = await watch(fetch, every=0, out=bar, disable=False)
    assert last == answers[2] and len(polls) == 3
    drawn = bar.getvalue()
    assert "Offer" in drawn and "3/3" in drawn
    assert "completed: queued 0, sent 2, delivered 0, read 0, failed 1, skipped 0" in drawn


async def test_watching_a_draft_says_how_to_start_it() -> None:
    async def fetch() -> Any:
        return {"id": 7, "name": "Offer", "status": "draft", "counts": _counts()}

    out = io.StringIO()
    assert (await watch(fetch, every=0, out=out))["status"] == "draft"
    assert "chancenter broadcasts start 7" in out.getvalue()


@pytest.mark.usefixtures("hub_env")
def test_a_broadcast_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "init")[0] == 0  # a space and its web-chat channel
    (channel,) = json.loads(cli(capsys, "channels", "list", "--json")[1])["items"]
    code, out, err = cli(capsys, "views", "create", "everyone", '{"all": []}', "--json")
    assert code == 0, err
    view = json.loads(out)["id"]
    code, out, err = cli(
        capsys,
        "broadcasts",
        "create",
        "December offer",
        "--channel",
        channel["id"],
        "--view-id",
        str(view),
        "--text",
        "Hi {{contact.first_name}}, 20% off until Sunday",
        "--quick-reply",
        "Yes",
        "--keep-person-chats",
        "--json",
    )
    assert code == 0, err
    created = json.loads(out)
    assert created["status"] == "draft" and created["settings"] == {"skip_with_person": False}
    assert created["message"]["quick_replies"] == [{"title": "Yes", "payload": "Yes"}]
    broadcast = str(created["id"])

    code, out, _ = cli(capsys, "broadcasts", "list")
    assert code == 0 and "December offer" in out.splitlines()[1]
    code, out, _ = cli(capsys, "broadcasts", "show", broadcast)
    assert code == 0 and "status:" in out and "draft" in out and "counts:" in out

    code, _, err = cli(
        capsys, "broadcasts", "create", "Other", "--channel", channel["id"], "--text", "Hi"
    )
    assert code == 2 and "view_id or contact_ids" in err  # the API's own words
    code, _, err = cli(
        capsys, "broadcasts", "create", "x", "--channel", "c", "--view-id", "1", "--param", "1"
    )
    assert code == 2 and "--template" in err

    assert json.loads(cli(capsys, "broadcasts", "start", broadcast, "--json")[1])["status"] == (
        "running"  # this hub works no queue: nothing sends it here
    )
    code, _, err = cli(capsys, "broadcasts", "start", broadcast)
    assert code == 2 and "cannot start a broadcast that is running" in err
    assert cli(capsys, "broadcasts", "pause", broadcast)[0] == 0
    code, out, _ = cli(capsys, "broadcasts", "show", broadcast, "--watch", "--json")
    assert code == 0 and json.loads(out)["status"] == "paused"  # still: the watch ends
    assert json.loads(out)["counts"]["total"] == 0
    code, out, _ = cli(capsys, "broadcasts", "recipients", broadcast, "--status", "failed", "--csv")
    assert code == 0
    assert out.splitlines() == ["contact_id,contact_name,status,reason,message_id,sent_at"]
    code, _, err = cli(capsys, "broadcasts", "recipients", broadcast)
    assert code == 0 and "(none)" in err
    assert json.loads(cli(capsys, "broadcasts", "cancel", broadcast, "--json")[1])["status"] == (
        "cancelled"
    )
    code, _, err = cli(capsys, "broadcasts", "show", "99")
    assert code == 2 and "no broadcast 99" in err
