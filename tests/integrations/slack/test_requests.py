"""Bad input on `/slack/events`: a clear 4xx (or a 200 that ignores it), nothing stored,
one log line, no traceback, and never the body in the logs."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web

from bot.keys import SETTINGS
from bot.storage.tables import (
    assignments,
    conversations,
    desk_outbox,
    messages,
    outbox,
    slack_threads,
    users,
)
from tests.conftest import count
from tests.fakes.slack import command_body, event_body, signed
from tests.integrations.slack.conftest import INBOX, SIGNING_SECRET, Desk

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MARK = "xoxp-SECRET-MARK-42"  # what must never reach a log (a legacy token, say)


@pytest.fixture
def info_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """INFO logging from before the app starts, as in production (bolt copies the level)."""
    caplog.set_level(logging.INFO)
    yield caplog


def _body() -> str:
    return urlencode({"command": "/chancenter", "text": "claim 1", "user_id": "U1", "token": MARK})


def _headers(timestamp: str | None, signature: str | None) -> dict[str, str]:
    headers = {"Content-Type": FORM}
    if timestamp is not None:
        headers["X-Slack-Request-Timestamp"] = timestamp
    if signature is not None:
        headers["X-Slack-Signature"] = signature
    return headers


def _forged() -> list[tuple[str, dict[str, str]]]:
    """Requests not signed by Slack, each with a body holding MARK."""
    good = signed(SIGNING_SECRET, _body(), FORM)
    stale_ts = str(int(time.time()) - 3600)
    stale = signed(SIGNING_SECRET, _body(), FORM) | {"X-Slack-Request-Timestamp": stale_ts}
    return [
        ("timestamp abc", _headers("abc", good["X-Slack-Signature"])),
        (
            "timestamp in Arabic-Indic digits",
            _headers("\u0661\u0667" + "\u0660" * 8, good["X-Slack-Signature"]),
        ),
        ("timestamp of 400 digits", _headers("9" * 400, good["X-Slack-Signature"])),
        ("no timestamp", _headers(None, good["X-Slack-Signature"])),
        ("no signature", _headers(good["X-Slack-Request-Timestamp"], None)),
        ("no headers at all", _headers(None, None)),
        ("garbled signature", _headers(good["X-Slack-Request-Timestamp"], "v0=zz, not hex!")),
        ("another scheme", _headers(good["X-Slack-Request-Timestamp"], "v1=" + "0" * 64)),
        ("wrong signature", _headers(good["X-Slack-Request-Timestamp"], "v0=" + "0" * 64)),
        ("stale timestamp", stale),
    ]


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def _signed_bad() -> list[tuple[str, bytes | str, str, int]]:
    """Correctly signed, but no Slack request: (what, body, content type, status)."""
    deep_dict = '{"a":' * 100_000 + "1" + "}" * 100_000
    return [
        ("empty body", "", JSON, 400),
        ("not JSON", "{not json", JSON, 400),
        ("not UTF-8", b'{"type": "\xff\xfe"}', JSON, 400),
        ("a number", "42", JSON, 400),
        ("a string", '"event_callback"', JSON, 400),
        ("null", "null", JSON, 400),
        ("an array", '[{"type": "event_callback"}]', JSON, 400),
        ("100,000 levels of arrays", _deep(100_000), JSON, 400),
        ("100,000 levels of objects", deep_dict, JSON, 400),
        (
            "a form whose payload nests 100,000 levels",
            urlencode({"payload": _deep(100_000)}),
            FORM,
            400,
        ),
        ("a form whose payload is not JSON", "payload=%7Bnope", FORM, 400),
        ("a form whose payload is an array", "payload=%5B1%5D", FORM, 400),
        ("a form that is not UTF-8", b"command=/chancenter&text=\xff", FORM, 400),
        ("a form of nothing Slack sends", "hello=world", FORM, 400),
        ("an object of nothing Slack sends", '{"hello": "world"}', JSON, 400),
    ]


def _event(event: Any) -> str:
    return json.dumps(
        {"type": "event_callback", "team_id": "T1", "event_id": "Ev1", "event": event}
    )


def _action(actions: Any, user: Any = None) -> str:
    payload = {"type": "block_actions", "team": {"id": "T1"}, "user": user or {"id": "U1"}}
    payload |= {"channel": {"id": INBOX}, "actions": actions}
    return urlencode({"payload": json.dumps(payload)})


def _signed_odd() -> list[tuple[str, str, str]]:
    """Signed and shaped like Slack's, but not what the desk can act on: 200, ignored."""
    reply = {"type": "message", "thread_ts": "1.2", "text": "x"}
    garbled = {"type": "message", "thread_ts": ["1"], "channel": {}, "user": 5, "text": 7}
    not_a_number = {"action_id": "claim", "block_id": "conversation:abc"}
    return [
        ("an event that is a string", _event("message"), JSON),
        ("an event_callback without event", json.dumps({"type": "event_callback"}), JSON),
        ("an event the desk does not subscribe to", _event({"type": "app_mention"}), JSON),
        ("a thread reply with no channel nor user", _event(reply), JSON),
        ("a thread reply of wrong types", _event(garbled), JSON),
        ("no actions", _action([]), FORM),
        ("an action that is a string", _action(["claim"]), FORM),
        ("a block id without a number", _action([not_a_number]), FORM),
        ("a block id that is not ours", _action([{"action_id": "claim", "block_id": "x"}]), FORM),
        ("an action the desk does not offer", _action([{"action_id": "dance"}]), FORM),
        ("an action without user", _action([not_a_number | {"block_id": "c:1"}], "U1"), FORM),
        ("a command without user", urlencode({"command": "/chancenter", "text": "claim 1"}), FORM),
        ("a view submission", json.dumps({"type": "view_submission"}), JSON),
    ]


async def _nothing_stored(desk: Desk) -> None:
    for table in (conversations, messages, outbox, desk_outbox, slack_threads, assignments, users):
        assert await count(desk.app, table) == 0, table.name


def _check_logs(caplog: pytest.LogCaptureFixture, what: str, body: str | bytes) -> list[str]:
    """One line from the desk, no traceback, no error, no body: the problems found."""
    problems = []
    records = [r for r in caplog.records if r.name != "aiohttp.access"]
    ours = [r for r in records if r.name.startswith("integrations.slack")]
    if len(ours) != 1:
        problems.append(
            f"{what}: {len(ours)} lines from the desk: {[r.getMessage() for r in ours]}"
        )
    for r in records:
        if r.exc_info or r.levelno >= logging.ERROR:
            problems.append(f"{what}: {r.levelname} from {r.name}: {r.getMessage()[:200]}")
        text = r.getMessage() + repr(r.__dict__)
        if MARK in text or (len(body) > 20 and str(body)[:40] in text):
            problems.append(f"{what}: the body reached the log ({r.name})")
    return problems


async def test_requests_not_signed_by_slack_get_401_and_never_log_their_body(
    info_logs: pytest.LogCaptureFixture, desk: Desk
) -> None:
    problems = []
    for what, headers in _forged():
        info_logs.clear()
        resp = await desk.hub.post("/slack/events", data=_body(), headers=headers)
        if resp.status != 401:
            problems.append(f"{what}: {resp.status} {(await resp.text())[:200]}")
        problems += _check_logs(info_logs, what, _body())
    await _nothing_stored(desk)
    assert desk.slack.ephemeral == [] and desk.slack.messages == []
    assert not problems, "\n".join(problems)


async def test_signed_bodies_that_are_no_slack_request_get_400(
    info_logs: pytest.LogCaptureFixture, desk: Desk
) -> None:
    problems = []
    for what, body, content_type, status in _signed_bad():
        info_logs.clear()
        resp = await desk.slack_post(body, content_type)
        if resp.status != status:
            problems.append(f"{what}: {resp.status} {(await resp.text())[:200]}")
        problems += _check_logs(info_logs, what, body)
    await _nothing_stored(desk)
    assert not problems, "\n".join(problems)


async def test_an_oversized_body_gets_413_signed_or_not(
    info_logs: pytest.LogCaptureFixture, desk: Desk
) -> None:
    body = "x" * (desk.app[SETTINGS].max_body_bytes + 1)
    for headers in (signed(SIGNING_SECRET, body, FORM), _headers("abc", "v0=00")):
        info_logs.clear()
        resp = await desk.hub.post("/slack/events", data=body, headers=headers)
        assert resp.status == 413
        # the app's own middleware answers it, before the desk: no line of ours
        problems = _check_logs(info_logs, "oversized", body)
        assert problems in ([], ["oversized: 0 lines from the desk: []"])
    await _nothing_stored(desk)


async def test_signed_requests_the_desk_cannot_act_on_are_acknowledged_and_ignored(
    info_logs: pytest.LogCaptureFixture, desk: Desk
) -> None:
    """Slack retries what is not answered 2xx: a request it signed is acknowledged."""
    problems = []
    for what, body, content_type in _signed_odd():
        info_logs.clear()
        resp = await desk.slack_post(body, content_type)
        if resp.status != 200:
            problems.append(f"{what}: {resp.status} {(await resp.text())[:200]}")
        problems += _check_logs(info_logs, what, body)
    await _nothing_stored(desk)
    assert desk.slack.messages == []
    assert not problems, "\n".join(problems)


async def test_a_good_request_still_works_and_logs_no_body(
    info_logs: pytest.LogCaptureFixture, desk: Desk
) -> None:
    resp = await desk.slack_post(command_body("help", "U1", INBOX), FORM)
    assert resp.status == 200 and "`claim ID`" in (await resp.json())["text"]
    # slack-bolt alone reads a form mentioning "payload" as {} and answers 404
    assert "`claim ID`" in await desk.command("help payload", "U1")
    challenge = json.dumps({"type": "url_verification", "challenge": "c-42", "token": "t"})
    resp = await desk.slack_post(challenge, JSON)
    assert resp.status == 200 and "c-42" in await resp.text()
    reply = event_body(
        {"type": "message", "channel": INBOX, "user": "U1", "text": "hi", "ts": "1.1"}
    )
    assert (await desk.slack_post(reply, JSON)).status == 200  # top-level chatter: ignored
    assert not [r for r in info_logs.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_slack_bolt_itself_logs_no_refused_body(caplog: pytest.LogCaptureFixture) -> None:
    """Behind the route's own check, bolt's verification must not log a body either."""
    from slack_bolt.request.async_request import AsyncBoltRequest
    from slack_sdk.web.async_client import AsyncWebClient

    from integrations.slack.desks import Desks
    from integrations.slack.events import build_bolt

    caplog.set_level(logging.DEBUG)
    desks = Desks(web.Application(), build_bolt)
    bolt = build_bolt(desks, 1, AsyncWebClient(token="xoxb-test"), SIGNING_SECRET)
    headers = signed("another secret", _body(), FORM)
    response = await bolt.async_dispatch(AsyncBoltRequest(body=_body(), headers=headers))  # type: ignore[arg-type]
    assert response.status == 401
    assert not [r for r in caplog.records if MARK in r.getMessage()]
