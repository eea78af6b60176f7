"""The environment's Slack desk serves the default space only: another space's handovers,
messages and flow summaries never reach it, and no Slack action reaches them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bot.api.auth import create_token
from bot.keys import CHANNELS, DB, DEFAULT_SPACE
from bot.storage.tables import (
    assignments,
    channels,
    contact_tags,
    conversations,
    desk_outbox,
    field_values,
    messages,
    shortcuts,
    slack_threads,
    space_members,
    surveys,
)
from bot.workspace.bootstrap import create_space
from bot.workspace.channel_admin import add_channel
from bot.workspace.contacts import create_field
from channels.telegram import TelegramChannel
from surveys.definition import dump, parse_survey
from tests.conftest import count, eventually
from tests.integrations.slack.conftest import INBOX, Desk
from tests.integrations.slack.test_desk import AWAY_FORM, handed_over

RIVAL_TOKEN = "654321:RIVAL-token"
RIVAL_CHAT = 777
SECRET = "rival-order-4111"  # what only the rival's agents may read


@dataclass
class Rival:
    space_id: int
    channel: TelegramChannel
    auth: dict[str, str]


async def rival(desk: Desk, away_flow: bool = False) -> Rival:
    """Another organization's space with its own Telegram bot and no Slack desk of its own."""
    app = desk.app
    desk.telegram.tokens.add(RIVAL_TOKEN)
    async with app[DB].write() as conn:
        space_id = (
            await create_space(conn, "Rival", "Rival", default=False, webchat=False)
        ).space_id
        token = await create_token(conn, space_id, None, "m", "manager")
        await create_field(conn, space_id, "email", "", "email", [])
    info = await add_channel(app, space_id, "telegram", {"token": RIVAL_TOKEN})
    channel = await app[CHANNELS].get(info.id)
    assert isinstance(channel, TelegramChannel)
    auth = {"Authorization": f"Bearer {token}"}
    if away_flow:
        yaml = auth | {"Content-Type": "application/yaml"}
        assert (await desk.hub.post("/api/v1/surveys", data=AWAY_FORM, headers=yaml)).status == 201
        changed = await desk.hub.patch(
            "/api/v1/space", json={"away_flow": "away_form"}, headers=auth
        )
        assert changed.status == 200, await changed.text()
    return Rival(space_id, channel, auth)


async def rival_says(desk: Desk, r: Rival, text: str) -> None:
    await desk.contact_says(
        text, name=f"Rival customer {SECRET}", channel=r.channel, chat=RIVAL_CHAT
    )


def rival_texts(desk: Desk) -> list[str]:
    return [c.params["text"] for c in desk.telegram.sent("sendMessage") if c.token == RIVAL_TOKEN]


def _slack_saw(desk: Desk) -> list[str]:
    slack = desk.slack
    return [repr(p) for p in slack.messages + slack.updates + slack.ephemeral]


async def test_another_spaces_handover_waits_in_chancenter_and_never_reaches_slack(
    desk: Desk,
) -> None:
    await desk.add_agent("U1", "Bea", "bea@example.com")
    r = await rival(desk, away_flow=True)
    await rival_says(desk, r, "hi")
    await rival_says(desk, r, "human")
    await eventually(
        lambda: rival_texts(desk)[-1:] == ["We're away right now. What can we help with?"]
    )
    await rival_says(desk, r, f"refund {SECRET}")
    await eventually(lambda: rival_texts(desk)[-1:] == ["And an email to reach you?"])
    await rival_says(desk, r, "rival@example.com")
    await eventually(lambda: rival_texts(desk)[-1].startswith("Thanks! Someone will"))
    await rival_says(desk, r, f"still there? {SECRET}")
    await eventually(lambda: _drained(desk))  # every notice was taken, none posted
    assert desk.slack.messages == [] and desk.slack.updates == [], _slack_saw(desk)

    # it waits in ChanCenter, for the rival's own people, through the API
    listed = await desk.hub.get("/api/v1/conversations?handler=waiting", headers=r.auth)
    (waiting,) = (await listed.json())["items"]
    assert waiting["handler"] == "waiting"

    # the default space's desk still works
    _, header = await handed_over(desk)
    assert header.channel == INBOX and "Ana" in header.text
    await eventually(lambda: desk.slack.thread(header.ts))
    await eventually(lambda: _drained(desk))
    assert not [t for t in _slack_saw(desk) if SECRET in t or "Rival" in t or "rival@" in t]


async def test_no_slack_action_reaches_another_spaces_conversation(desk: Desk) -> None:
    app = desk.app
    await desk.add_agent("U1", "Bea", "bea@example.com")
    async with app[DB].write() as conn:
        await conn.execute(space_members.update().values(role="manager"))  # Bea manages hers
    r = await rival(desk)
    await rival_says(desk, r, "human")
    await eventually(lambda: _waiting(desk, r))
    async with app[DB].write() as conn:
        theirs = (
            await conn.execute(
                sa.select(conversations.c.id).where(conversations.c.space_id == r.space_id)
            )
        ).scalar_one()
        for space in (r.space_id, app[DEFAULT_SPACE]):
            await conn.execute(shortcuts.insert().values(space_id=space, name="thanks", text="Hi"))
        nps = "name: nps\nsteps:\n  - {id: s, type: question, text: '0-10?', answer: number}"
        await conn.execute(
            surveys.insert().values(
                space_id=app[DEFAULT_SPACE], name="nps", definition=dump(parse_survey(nps))
            )
        )
        # a thread left from before: it must not route a reply into the rival's conversation
        await conn.execute(
            slack_threads.insert().values(conversation_id=theirs, slack_channel=INBOX, ts="1.5")
        )
    await eventually(lambda: _drained(desk))
    before = await _state(desk, theirs)
    n = theirs
    for command in (
        f"claim {n}", f"assign {n} <@U1|bea>", f"bot {n}", f"close {n}", f"tag {n} vip",
        f"untag {n} vip", f"field {n} email x@example.com", f"s {n} thanks", f"survey nps {n}",
    ):  # fmt: skip
        said = await desk.command(command, "U1")
        assert f"no conversation {n} in this space" in said, (command, said)
    for action, extra in (
        ("claim", {}),
        ("assign", {"selected_user": "U1"}),
        ("back_to_bot", {}),
        ("close", {}),
    ):
        await desk.click(action, n, "U1", **extra)
    told = [e.text for e in desk.slack.ephemeral]
    assert told == [f"no conversation {n} in this space"] * 4, told
    await desk.reply_in_thread("1.5", "U1", "hello from the wrong desk", ts="1800000000.000001")
    assert "no conversation" in desk.slack.ephemeral[-1].text
    said = await desk.command(f"channel remove {r.channel.id}", "U1")
    assert said.startswith(f"no channel {r.channel.id!r} in this space"), said
    await eventually(lambda: _drained(desk))
    assert await _state(desk, theirs) == before
    assert not [t for t in rival_texts(desk) if "wrong desk" in t]


async def _drained(desk: Desk) -> bool:
    return await count(desk.app, desk_outbox) == 0


async def _waiting(desk: Desk, r: Rival) -> bool:
    async with desk.app[DB].read() as conn:
        handler = (
            await conn.execute(
                sa.select(conversations.c.handler).where(conversations.c.space_id == r.space_id)
            )
        ).scalar()
    return handler == "waiting"


async def _state(desk: Desk, conversation_id: int) -> tuple[Any, ...]:
    """Everything a Slack action could have changed about the rival's conversation."""
    app = desk.app
    by_agent = messages.c.sender_user_id.is_not(None)
    async with app[DB].read() as conn:
        row = (
            await conn.execute(
                sa.select(conversations).where(conversations.c.id == conversation_id)
            )
        ).one()
        channel_left = await conn.scalar(sa.select(sa.func.count()).select_from(channels))
    return (
        row.handler,
        row.status,
        row.assignee_id,
        row.team_id,
        await count(app, assignments, assignments.c.conversation_id == conversation_id),
        await count(app, messages, messages.c.conversation_id == conversation_id, by_agent),
        await count(app, contact_tags),
        await count(app, field_values),
        channel_left,
    )
