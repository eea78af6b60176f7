# ruff: noqa: F811 - the Telegram fixtures are imported by name, then requested as arguments
"""Admin commands from a chat: only after `/link CODE`, only for space managers and org admins.

Covers `bot.workspace.channel_admin`, `bot.workspace.links`.
"""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from bot.keys import DB, DEFAULT_SPACE
from bot.workspace.bootstrap import SpaceCreated, add_admin
from bot.workspace.links import new_code
from channels.telegram import TelegramChannel
from tests.channels.test_telegram import (  # noqa: F401 - fixtures
    channel,
    fake,
    hub,
    message,
    post,
    update,
)
from tests.conftest import eventually
from tests.fakes.telegram import FakeTelegram

OTHER_BOT = "777:SECOND-bot"


async def say(hub: TestClient, channel: TelegramChannel, n: int, text: str, chat: int = 4242):
    body = message(n, chat={"id": chat, "type": "private"}, text=text)
    body["from"] = {"id": chat, "is_bot": False, "first_name": "Someone"}
    assert (await post(hub, channel, update(n, message=body))).status == 200


async def replies(fake: FakeTelegram, chat: int, n: int) -> list[str]:
    async def enough() -> list[str] | None:
        texts = [
            c.params["text"] for c in fake.sent("sendMessage") if c.params["chat_id"] == str(chat)
        ]
        return texts if len(texts) >= n else None

    return await eventually(enough)


async def test_link_then_manage_channels_from_the_chat(
    hub: TestClient, fake: FakeTelegram, channel: TelegramChannel
) -> None:
    app = hub.server.app
    fake.tokens.add(OTHER_BOT)
    async with app[DB].write() as conn:
        import sqlalchemy as sa

        from bot.storage.tables import spaces

        org = (
            await conn.execute(
                sa.select(spaces.c.organization_id).where(spaces.c.id == app[DEFAULT_SPACE])
            )
        ).scalar_one()
        admin = await add_admin(
            conn, SpaceCreated(org, app[DEFAULT_SPACE], None), "Ana", "ana@example.com"
        )
        code = await new_code(conn, admin)

    # before linking, a command is an ordinary message: the bot answers
    await say(hub, channel, 1, "/channel list")
    assert (await replies(fake, 4242, 1))[0].startswith("Hi! I'm")

    await say(hub, channel, 2, "/link WRONG123")
    assert "not valid" in (await replies(fake, 4242, 2))[1]
    await say(hub, channel, 3, f"/link {code.lower()}")
    assert (await replies(fake, 4242, 3))[2].startswith("Linked")

    await say(hub, channel, 4, f"/channel add telegram {OTHER_BOT}")
    added = (await replies(fake, 4242, 4))[3]
    assert added.startswith("Connected telegram @acme_bot as telegram-")
    assert OTHER_BOT in fake.webhooks

    await say(hub, channel, 5, "/channel list")
    listing = (await replies(fake, 4242, 5))[4]
    kinds = [line.split()[1] for line in listing.splitlines()]
    assert sorted(kinds) == ["telegram", "telegram", "webchat"]

    await say(hub, channel, 6, "/channel add fax 123")
    assert "unknown channel kind" in (await replies(fake, 4242, 6))[5]

    # someone else sending the same command gets the bot, not the admin
    await say(hub, channel, 7, "/channel list", chat=999)
    assert (await replies(fake, 999, 1))[0].startswith("Hi! I'm")
