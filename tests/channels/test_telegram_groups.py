# ruff: noqa: F811 - the Telegram fixtures are imported by name, then requested as arguments
"""Telegram groups, per channel (`settings.groups`): off, a group's messages are dropped;
on, the group is one contact with one conversation, each message signed by its author.

Covers `channels.telegram_inbound`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from bot.api.auth import create_token
from bot.keys import CHANNELS, DB, DEFAULT_SPACE
from bot.model import MediaPart, MessageEdited, MessageReceived, Postback, TextPart
from bot.storage.tables import contacts, conversations, identities, messages, work_items
from channels.telegram import TelegramChannel
from tests.channels.test_telegram import (  # noqa: F401 - fixtures
    USER,
    channel,
    fake,
    hub,
    message,
    post,
    update,
)
from tests.conftest import count, eventually
from tests.fakes.telegram import FakeTelegram

GROUP = {"id": -100123, "type": "supergroup", "title": "Acme x Globex"}
BRUNO = {"id": 77, "is_bot": False, "first_name": "Bruno"}


async def groups(hub: TestClient, channel: TelegramChannel, on: bool) -> TelegramChannel:
    """Turn the channel's groups on or off through the API, as an admin would."""
    app = hub.server.app
    async with app[DB].write() as conn:
        token = await create_token(conn, app[DEFAULT_SPACE], None, "m", "manager")
    resp = await hub.patch(
        f"/api/v1/channels/{channel.id}",
        json={"settings": {"groups": on}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status == 200, await resp.text()
    live = await app[CHANNELS].get(channel.id)
    assert isinstance(live, TelegramChannel)
    return live


def in_group(n: int, author: dict[str, Any] = USER, **content: Any) -> dict[str, Any]:
    return update(n, message={**message(n, chat=GROUP, **content), "from": author})


async def test_group_messages_wait_for_the_setting_then_make_one_conversation(
    hub: TestClient, fake: FakeTelegram, channel: TelegramChannel
) -> None:
    app = hub.server.app
    assert (await post(hub, channel, in_group(1, text="anyone there?"))).status == 200
    assert await count(app, messages) == 0  # off by default: dropped

    channel = await groups(hub, channel, True)
    assert (await post(hub, channel, in_group(2, text="hi team"))).status == 200
    assert (await post(hub, channel, in_group(3, BRUNO, text="/channel list"))).status == 200
    assert (await post(hub, channel, in_group(4, BRUNO, photo=[_photo()]))).status == 200
    await eventually(lambda: _drained(app))

    async with app[DB].read() as conn:
        (group,) = (
            await conn.execute(
                sa.select(contacts.c.name, identities.c.external_id).join(
                    identities, identities.c.contact_id == contacts.c.id
                )
            )
        ).all()
        threads = await count(app, conversations)
        said = (
            (
                await conn.execute(
                    sa.select(messages.c.parts)
                    .where(messages.c.direction == "in")
                    .order_by(messages.c.id)
                )
            )
            .scalars()
            .all()
        )
    assert tuple(group) == ("Acme x Globex", "-100123")  # the group is the contact
    assert threads == 1
    assert said[0] == [{"type": "text", "text": "Ana Lima: hi team"}]
    # a command from a group is a message like any other (anyone there could send it)
    assert said[1] == [{"type": "text", "text": "Bruno: /channel list"}]
    assert said[2][0] == {"type": "text", "text": "Bruno:"} and said[2][1]["type"] == "image"
    # the bot answers the group, not a member in private
    replies = await eventually(lambda: fake.sent("sendMessage"))
    assert {c.params["chat_id"] for c in replies} == {"-100123"}

    channel = await groups(hub, channel, False)
    assert (await post(hub, channel, in_group(5, text="still here?"))).status == 200
    assert await count(app, messages, messages.c.direction == "in") == 3


def test_parse_signs_a_groups_messages_and_keeps_private_chats_as_they_are(
    channel: TelegramChannel,
) -> None:
    on = TelegramChannel(replace(channel.config, settings={"groups": True}), channel.ctx)
    (edited,) = on.parse(
        {"update_id": 9, "edited_message": {**in_group(1, text="fixed")["message"], "edit_date": 2}}
    )
    assert isinstance(edited, MessageEdited)
    assert edited.parts == (TextPart(text="Ana Lima: fixed"),)
    assert edited.sender.external_id == "-100123" and edited.sender.name == "Acme x Globex"
    # an anonymous admin writes as the group itself
    anonymous = in_group(2, text="we are closed today")
    anonymous["message"]["sender_chat"] = GROUP
    (event,) = on.parse(anonymous)
    assert isinstance(event, MessageReceived)
    assert event.parts == (TextPart(text="Acme x Globex: we are closed today"),)
    # /start in a group is text, never the welcome
    (start,) = on.parse(in_group(3, text="/start"))
    assert isinstance(start, MessageReceived) and start.parts[0] == TextPart(
        text="Ana Lima: /start"
    )
    # a button pressed in a group comes from the group
    press = {
        "id": "q1",
        "from": USER,
        "chat_instance": "c",
        "data": "YES",
        "message": message(4, chat=GROUP, text="Sure?"),
    }
    (postback,) = on.parse({"update_id": 10, "callback_query": press})
    assert isinstance(postback, Postback) and postback.sender.external_id == "-100123"
    assert channel.parse({"update_id": 10, "callback_query": press}) == []  # groups off
    # a private chat is as before: the person, their words
    (private,) = on.parse(update(5, message=message(5, text="hello")))
    assert isinstance(private, MessageReceived) and private.parts == (TextPart(text="hello"),)
    assert private.sender.name == "Ana Lima" and private.sender.external_id == "4242"
    # a channel's posts are not a group's
    post_chat = {"id": -1009, "type": "channel", "title": "News"}
    assert on.parse(update(6, message=message(6, chat=post_chat, text="news"))) == []
    photo = on.parse(in_group(7, photo=[_photo()], caption="look"))[0]
    assert isinstance(photo, MessageReceived)
    assert photo.parts[0] == TextPart(text="Ana Lima:")
    assert isinstance(photo.parts[1], MediaPart) and photo.parts[1].caption == "look"


def _photo() -> dict[str, Any]:
    return {"file_id": "p1", "file_unique_id": "u1", "width": 10, "height": 10}


async def _drained(app: Any) -> bool:
    return await count(app, work_items) == 0
