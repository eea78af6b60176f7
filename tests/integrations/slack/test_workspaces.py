"""Two spaces, each with its own Slack workspace on the fake Slack API: the default space
by the environment (team T1), another connected through the API (team T2). Covers
`integrations.slack.desks`, `routing`, `connect`, `api` and `relay`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from bot.api.auth import create_token
from bot.keys import CHANNELS, DB, DEFAULT_SPACE
from bot.storage.tables import conversations, desk_outbox, integrations
from bot.workspace.bootstrap import create_space
from channels.telegram import SECRET_HEADER
from integrations.slack.desks import DESKS
from tests.conftest import count, eventually
from tests.fakes.slack import Posted, Workspace, command_body, event_body
from tests.integrations.slack.conftest import INBOX, Desk
from tests.integrations.slack.test_desk import handed_over

BETA_TELEGRAM = "555555:BETA-token"
BETA_SLACK = "xoxb-beta"
BETA_SECRET = "beta-signing-secret"
BETA_INBOX = "CBETA"
BETA = Workspace("T2", "A2", "UBOT2", "BBOT2", "Beta", channels=frozenset({"CBETA"}))
FORM = "application/x-www-form-urlencoded"


@dataclass
class Space:
    id: int
    auth: dict[str, str]
    channel_id: int
    chat: int = 9090
    updates: int = 0


async def beta_space(desk: Desk, connect: bool = True) -> Space:
    """A second business on the hub: its Telegram bot and its Slack desk, both connected
    through the REST API by its manager."""
    desk.telegram.tokens.add(BETA_TELEGRAM)
    desk.slack.workspaces[BETA_SLACK] = BETA
    async with desk.app[DB].write() as conn:
        space_id = (await create_space(conn, "Beta", "Beta", default=False, webchat=False)).space_id
        token = await create_token(conn, space_id, None, "m", "manager")
    auth = {"Authorization": f"Bearer {token}"}
    added = await desk.hub.post(
        "/api/v1/channels", json={"kind": "telegram", "token": BETA_TELEGRAM}, headers=auth
    )
    assert added.status == 201, await added.text()
    space = Space(space_id, auth, (await added.json())["id"])
    if connect:
        await connect_slack(desk, space)
    return space


async def connect_slack(desk: Desk, space: Space) -> None:
    body = {"bot_token": BETA_SLACK, "signing_secret": BETA_SECRET, "inbox_channel": BETA_INBOX}
    resp = await desk.hub.post("/api/v1/integrations/slack", json=body, headers=space.auth)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["settings"]["team_id"] == "T2"


async def beta_says(desk: Desk, space: Space, text: str) -> None:
    """A Telegram message to the beta space's bot, through its webhook."""
    space.updates += 1
    chat = {"id": space.chat, "type": "private", "first_name": "Bruno"}
    update = {
        "update_id": 5000 + space.updates,
        "message": {
            "message_id": space.updates,
            "date": 1767225600,
            "chat": chat,
            "from": {"id": space.chat, "is_bot": False, "first_name": "Bruno"},
            "text": text,
        },
    }
    channel = await desk.app[CHANNELS].get(space.channel_id)
    secret = channel.config.credentials.secret_token.get_secret_value()  # type: ignore[attr-defined]
    resp = await desk.hub.post(
        f"/webhooks/{space.channel_id}", json=update, headers={SECRET_HEADER: secret}
    )
    assert resp.status == 200, await resp.text()


async def beta_handed_over(desk: Desk, space: Space) -> tuple[int, Posted]:
    await beta_says(desk, space, "hi")
    await beta_says(desk, space, "a human please")
    await eventually(lambda: any(m.blocks and m.channel == BETA_INBOX for m in desk.slack.messages))
    header = next(m for m in desk.slack.messages if m.blocks and m.channel == BETA_INBOX)
    return int(header.blocks[1]["block_id"].split(":")[1]), header


async def conversation(desk: Desk, conversation_id: int) -> Any:
    async with desk.app[DB].read() as conn:
        return (
            await conn.execute(
                sa.select(conversations).where(conversations.c.id == conversation_id)
            )
        ).one()


async def test_each_space_opens_its_threads_in_its_own_inbox_with_its_own_token(
    desk: Desk,
) -> None:
    beta = await beta_space(desk)
    ours, our_header = await handed_over(desk)
    theirs, their_header = await beta_handed_over(desk, beta)
    assert (our_header.channel, our_header.token) == (INBOX, "xoxb-test")
    assert (their_header.channel, their_header.token) == (BETA_INBOX, BETA_SLACK)
    assert "Bruno" in their_header.text and "Bruno" not in our_header.text
    assert (await conversation(desk, theirs)).space_id == beta.id
    assert (await conversation(desk, ours)).space_id == desk.app[DEFAULT_SPACE]
    assert {m.token for m in desk.slack.messages if m.channel == BETA_INBOX} == {BETA_SLACK}
    assert {m.token for m in desk.slack.messages if m.channel == INBOX} == {"xoxb-test"}

    listed = await desk.hub.get("/api/v1/integrations", headers=beta.auth)
    (slack,) = (await listed.json())["items"]
    assert slack["kind"] == "slack" and slack["has_credentials"]
    assert slack["settings"]["inbox_channel"] == BETA_INBOX
    assert BETA_SLACK not in await listed.text() and BETA_SECRET not in await listed.text()


async def test_an_agent_of_one_space_cannot_claim_anothers_conversation(desk: Desk) -> None:
    beta = await beta_space(desk)
    await desk.add_agent("U1", "Bea", "bea@example.com")  # space A's agent, workspace T1
    bruno = await desk.add_agent("U2", "Bruno", "bruno@example.com", space_id=beta.id)
    theirs, _ = await beta_handed_over(desk, beta)

    # through A's desk: command and button answer that B's conversation is not there
    said = await desk.command(f"claim {theirs}", "U1")
    assert f"no conversation {theirs} in this space" in said
    await desk.click("claim", theirs, "U1")
    assert desk.slack.ephemeral[-1].text == f"no conversation {theirs} in this space"
    # signed with A's secret but claiming B's team: never acts in B
    forged = command_body(f"claim {theirs}", "U1", BETA_INBOX, team="T2", app="A2")
    assert (await desk.slack_post(forged, FORM)).status in (200, 401)
    assert (await conversation(desk, theirs)).assignee_id is None

    # B's own agent, through B's desk and B's secret, can
    mine = command_body(f"claim {theirs}", "U2", BETA_INBOX, team="T2", app="A2")
    resp = await desk.slack_post(mine, FORM, secret=BETA_SECRET)
    assert resp.status == 200, await resp.text()
    assert (await conversation(desk, theirs)).assignee_id == bruno


async def test_b_secret_claiming_a_team_is_refused(desk: Desk) -> None:
    """A request signed with B's secret that names A's team gets no desk of A's."""
    beta = await beta_space(desk)
    await desk.add_agent("U1", "Bea", "bea@example.com")
    ours, _ = await handed_over(desk)
    forged = command_body(f"claim {ours}", "U1", INBOX)  # team T1, app A1
    resp = await desk.slack_post(forged, FORM, secret=BETA_SECRET)
    assert resp.status == 200 and await resp.text() == ""  # Slack's, not for this desk
    assert (await conversation(desk, ours)).assignee_id is None
    assert beta.id != (await conversation(desk, ours)).space_id


async def test_an_unknown_team_is_ignored_and_logged_once(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "integrations.slack.routing")
    await desk.slack_post(event_body({"type": "message", "text": "x"}), "application/json")
    for n in range(3):
        event = {"type": "message", "channel": "CX", "user": "UX", "text": f"x{n}", "ts": f"{n}.1"}
        resp = await desk.slack_post(event_body(event, team="T9", app="A9"), "application/json")
        assert resp.status == 200
    ignored = [r for r in caplog.records if r.getMessage() == "Slack request ignored"]
    assert len(ignored) == 1 and "T9" in ignored[0].reason  # type: ignore[attr-defined]


async def test_bad_credentials_are_422_with_slacks_reason_and_nothing_stored(
    desk: Desk,
) -> None:
    beta = await beta_space(desk, connect=False)
    for body, reason in (
        (
            {"bot_token": "xoxb-nope", "signing_secret": "s", "inbox_channel": BETA_INBOX},
            "invalid_auth",
        ),
        (
            {"bot_token": BETA_SLACK, "signing_secret": "s", "inbox_channel": "CNOPE"},
            "channel_not_found",
        ),
    ):
        resp = await desk.hub.post("/api/v1/integrations/slack", json=body, headers=beta.auth)
        assert resp.status == 422 and reason in await resp.text(), await resp.text()
    assert await count(desk.app, integrations) == 0
    assert desk.app[DESKS].of(beta.id) is None


async def test_one_workspaces_app_serves_one_space(desk: Desk) -> None:
    beta = await beta_space(desk)
    async with desk.app[DB].write() as conn:
        gamma = (await create_space(conn, "Gamma", "Gamma", default=False, webchat=False)).space_id
        token = await create_token(conn, gamma, None, "m", "manager")
    body = {"bot_token": BETA_SLACK, "signing_secret": BETA_SECRET, "inbox_channel": BETA_INBOX}
    resp = await desk.hub.post(
        "/api/v1/integrations/slack", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status == 409 and f"space {beta.id}" in await resp.text()


async def test_an_uninstalled_desk_parks_its_notices_until_installed_again(desk: Desk) -> None:
    beta = await beta_space(desk)
    theirs, header = await beta_handed_over(desk, beta)
    await eventually(lambda: _drained(desk))
    uninstalled = event_body({"type": "app_uninstalled"}, team="T2", app="A2")
    resp = await desk.slack_post(uninstalled, "application/json", secret=BETA_SECRET)
    assert resp.status == 200, await resp.text()
    assert desk.app[DESKS].of(beta.id) is None and desk.app[DESKS].parked(beta.id)
    listed = await (await desk.hub.get("/api/v1/integrations", headers=beta.auth)).json()
    assert (
        not listed["items"][0]["has_credentials"] and "uninstalled" in listed["items"][0]["error"]
    )

    posted = len(desk.slack.messages)
    await beta_says(desk, beta, "still there?")  # a notice for the thread: it waits
    await eventually(lambda: _outbox(desk))
    listed = await desk.hub.get("/api/v1/conversations?handler=waiting", headers=beta.auth)
    assert [c["id"] for c in (await listed.json())["items"]] == [theirs]
    await desk.app[DESKS].refresh()
    assert len(desk.slack.messages) == posted and await _outbox(desk) >= 1

    await connect_slack(desk, beta)  # installed again: the notice goes now
    await eventually(
        lambda: any("still there?" in m.text for m in desk.slack.thread(header.ts)), timeout=10
    )
    await eventually(lambda: _drained(desk))


async def test_revoked_bot_tokens_uninstall_but_user_tokens_do_not(desk: Desk) -> None:
    beta = await beta_space(desk)
    users_only = event_body({"type": "tokens_revoked", "tokens": {"oauth": ["U2"]}}, "T2", "A2")
    await desk.slack_post(users_only, "application/json", secret=BETA_SECRET)
    assert desk.app[DESKS].of(beta.id) is not None
    bots = event_body({"type": "tokens_revoked", "tokens": {"bot": ["UBOT2"]}}, "T2", "A2")
    await desk.slack_post(bots, "application/json", secret=BETA_SECRET)
    assert desk.app[DESKS].of(beta.id) is None
    assert desk.app[DESKS].of(desk.app[DEFAULT_SPACE]) is not None  # A's still serves


async def _outbox(desk: Desk) -> int:
    return await count(desk.app, desk_outbox)


async def _drained(desk: Desk) -> bool:
    return await _outbox(desk) == 0
