"""Telegram end to end: admin adds the bot, updates come in signed, replies go out via aiogram.

Covers `bot.delivery.media`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application

from bot.api.auth import create_token
from bot.app import create_app
from bot.errors import ConfigError
from bot.keys import CHANNELS, DB, DEFAULT_SPACE
from bot.model import (
    ContactBlocked,
    ContactCardPart,
    LocationPart,
    MediaPart,
    MessageEdited,
    MessageReceived,
    Outbound,
    Postback,
    QuickRepliesPart,
    QuickReply,
    TextPart,
)
from bot.storage.tables import channels, messages, work_items
from bot.workspace.channel_admin import add_channel, list_channels, remove_channel
from channels.telegram import SECRET_HEADER, TelegramChannel
from tests.conftest import closed_within, count, eventually
from tests.fakes.telegram import FakeTelegram

TOKEN = "123456:TEST-token"
CHAT = 4242
USER = {
    "id": CHAT,
    "is_bot": False,
    "first_name": "Ana",
    "last_name": "Lima",
    "language_code": "pt-BR",
}
PRIVATE = {"id": CHAT, "type": "private", "first_name": "Ana"}


def update(n: int, **body: Any) -> dict[str, Any]:
    return {"update_id": 1000 + n, **body}


def message(n: int, chat: dict[str, Any] = PRIVATE, **content: Any) -> dict[str, Any]:
    return {"message_id": n, "date": 1767225600, "chat": chat, "from": USER, **content}


@pytest.fixture
async def fake() -> Any:
    telegram = FakeTelegram()
    server = TestServer(telegram.app())
    await server.start_server()
    telegram.url = str(server.make_url("")).rstrip("/")
    yield telegram
    await server.close()


@pytest.fixture
async def hub(aiohttp_client: Any, settings: Any, fake: FakeTelegram) -> Any:
    app = create_app(
        settings.model_copy(
            update={"telegram_api_base": fake.url, "public_url": "https://hub.example.com"}
        )
    )
    client = await aiohttp_client(app)
    yield client
    await closed_within(client, 15)


@pytest.fixture
async def channel(hub: TestClient) -> TelegramChannel:
    app = hub.server.app
    info = await add_channel(app, app[DEFAULT_SPACE], "telegram", {"token": TOKEN})
    found = await app[CHANNELS].get(info.id)
    assert isinstance(found, TelegramChannel)
    return found


def secret(channel: TelegramChannel) -> str:
    return channel.config.credentials.secret_token.get_secret_value()  # type: ignore[attr-defined]


async def post(hub: TestClient, channel: TelegramChannel, body: Any, token: str | None = None):
    headers = {SECRET_HEADER: secret(channel) if token is None else token}
    headers["Content-Type"] = "application/json"
    return await hub.post(f"/webhooks/{channel.id}", data=json.dumps(body), headers=headers)


# --- admin --------------------------------------------------------------------------


async def test_adding_a_bot_checks_the_token_registers_the_webhook_and_encrypts_it(
    hub: TestClient, fake: FakeTelegram, channel: TelegramChannel
) -> None:
    assert [c.method for c in fake.calls[:2]] == ["getMe", "setWebhook"]
    hook = fake.webhooks[TOKEN]
    assert hook["url"] == f"https://hub.example.com/webhooks/{channel.id}"
    assert hook["secret_token"] == secret(channel)
    assert channel.config.name == "@acme_bot"
    async with hub.server.app[DB].read() as conn:
        stored = (
            await conn.execute(sa.select(channels.c.credentials).where(channels.c.id == channel.id))
        ).scalar_one()
    assert TOKEN not in stored and secret(channel) not in stored


async def test_a_bad_token_is_refused_with_what_to_do(hub: TestClient) -> None:
    app = hub.server.app
    with pytest.raises(ConfigError, match="BotFather"):
        await add_channel(app, app[DEFAULT_SPACE], "telegram", {"token": "999:WRONG"})
    with pytest.raises(ConfigError, match="123456:ABC-DEF"):
        await add_channel(app, app[DEFAULT_SPACE], "telegram", {"token": "not a token"})
    with pytest.raises(ConfigError, match="choose one of"):
        await add_channel(app, app[DEFAULT_SPACE], "fax", {"token": TOKEN})
    assert [c.kind for c in await list_channels(app, app[DEFAULT_SPACE])] == ["webchat"]


async def test_removing_deletes_the_webhook(
    hub: TestClient, fake: FakeTelegram, channel: TelegramChannel
) -> None:
    app = hub.server.app
    await remove_channel(app, app[DEFAULT_SPACE], channel.id)
    assert TOKEN not in fake.webhooks
    assert (await post(hub, channel, update(1, message=message(1, text="hi")))).status == 404


# --- in -----------------------------------------------------------------------------


async def test_wrong_or_missing_secret_is_401_and_stores_nothing(
    hub: TestClient, channel: TelegramChannel
) -> None:
    body = update(1, message=message(1, text="hi"))
    assert (await post(hub, channel, body, token="wrong")).status == 401
    assert (await hub.post(f"/webhooks/{channel.id}", json=body)).status == 401
    assert await count(hub.server.app, messages) == 0


async def test_hi_gets_the_welcome_with_an_inline_keyboard(
    hub: TestClient, fake: FakeTelegram, channel: TelegramChannel
) -> None:
    resp = await post(hub, channel, update(1, message=message(1, text="hi")))
    assert resp.status == 200
    await eventually(lambda: fake.sent("sendMessage"))
    (sent,) = fake.sent("sendMessage")
    assert sent.params["chat_id"] == str(CHAT)
    assert sent.params["text"].startswith("Hi! I'm the ChanCenter assistant")
    keyboard = sent.params["reply_markup"]["inline_keyboard"]
    assert [row[0]["callback_data"] for row in keyboard] == [
        "Opening hours",
        "Pricing",
        "Talk to a human",
    ]
    # redelivery of the same update is a no-op
    await post(hub, channel, update(1, message=message(1, text="hi")))
    await eventually(lambda: _drained(hub.server.app))
    assert len(fake.sent()) == 1


async def test_callback_query_is_answered_in_the_webhook_response_and_routed(
    hub: TestClient, fake: FakeTelegram, channel: TelegramChannel
) -> None:
    query = {
        "id": "cbq-1",
        "from": USER,
        "chat_instance": "x",
        "data": "Pricing",
        "message": message(
            7,
            text="Hi!",
            reply_markup={"inline_keyboard": [[{"text": "Pricing", "callback_data": "Pricing"}]]},
        ),
    }
    resp = await post(hub, channel, update(2, callback_query=query))
    assert await resp.json() == {"method": "answerCallbackQuery", "callback_query_id": "cbq-1"}
    await eventually(lambda: len(fake.sent("sendMessage")) == 2)  # welcome + pricing
    assert fake.sent("sendMessage")[1].params["text"].startswith("Starter is free")


async def test_retry_after_is_honoured(
    hub: TestClient, fake: FakeTelegram, channel: TelegramChannel
) -> None:
    fake.fail("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    await post(hub, channel, update(1, message=message(1, text="hi")))
    await eventually(lambda: len(fake.sent("sendMessage")) == 2, timeout=6)
    app = hub.server.app
    async with app[DB].read() as conn:
        status = (
            await conn.execute(sa.select(messages.c.status).where(messages.c.direction == "out"))
        ).scalar_one()
    assert status in ("sent", "pending")  # the second attempt went through


async def test_blocked_bot_marks_the_reply_failed_with_the_reason(
    hub: TestClient, fake: FakeTelegram, channel: TelegramChannel
) -> None:
    fake.fail("sendMessage", 403, "Forbidden: bot was blocked by the user")
    await post(hub, channel, update(1, message=message(1, text="hi")))
    app = hub.server.app

    async def failed() -> Any:
        async with app[DB].read() as conn:
            return (
                await conn.execute(sa.select(messages.c.error).where(messages.c.status == "failed"))
            ).scalar()

    assert "blocked the bot" in await eventually(failed)


async def test_media_is_fetched_with_the_bots_credentials(
    hub: TestClient, fake: FakeTelegram, channel: TelegramChannel
) -> None:
    fake.files["files/AgAD.bin"] = b"\x89PNG..."
    media = await channel.fetch_media("AgAD")
    assert media.content == b"\x89PNG..."


async def test_media_reaches_agents_through_the_signed_proxy_without_the_token(
    hub: TestClient, fake: FakeTelegram, channel: TelegramChannel
) -> None:
    fake.files["files/PHOTO1.bin"] = b"\x89PNG-photo"
    photo = [{"file_id": "PHOTO1", "file_unique_id": "p", "width": 10, "height": 10}]
    await post(hub, channel, update(1, message=message(1, photo=photo)))
    app = hub.server.app
    async with app[DB].write() as conn:
        token = await create_token(conn, app[DEFAULT_SPACE], None, "t", "admin")
    auth = {"Authorization": f"Bearer {token}"}
    (conv,) = (await (await hub.get("/api/v1/conversations", headers=auth)).json())["items"]
    listed = await (
        await hub.get(f"/api/v1/conversations/{conv['id']}/messages", headers=auth)
    ).json()
    url = listed["items"][0]["parts"][0]["url"]
    assert url.startswith(f"/media/{channel.id}/PHOTO1?sig=") and TOKEN not in url
    resp = await hub.get(url)
    assert resp.status == 200 and await resp.read() == b"\x89PNG-photo"
    assert (await hub.get(url[:-3] + "xyz")).status == 403
    assert (await hub.get(f"/media/{channel.id}/OTHER?sig=" + url.split("sig=")[1])).status == 403


# --- parse (pure) ----------------------------------------------------------------------


def parse(channel: TelegramChannel, body: dict[str, Any]) -> list[Any]:
    return channel.parse(update(1, **body))


def test_parse_covers_every_message_kind(channel: TelegramChannel) -> None:
    photo = [
        {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90},
        {"file_id": "big", "file_unique_id": "b", "width": 1280, "height": 960, "file_size": 1000},
    ]
    cases: list[tuple[dict[str, Any], Any]] = [
        ({"text": "hello"}, TextPart(text="hello")),
        (
            {"photo": photo, "caption": "look"},
            MediaPart(type="image", media_id="big", size=1000, caption="look"),
        ),
        (
            {
                "document": {
                    "file_id": "d",
                    "file_unique_id": "d",
                    "file_name": "a.pdf",
                    "mime_type": "application/pdf",
                }
            },
            MediaPart(type="file", media_id="d", name="a.pdf", mime_type="application/pdf"),
        ),
        (
            {"voice": {"file_id": "v", "file_unique_id": "v", "duration": 2}},
            MediaPart(type="audio", media_id="v"),
        ),
        (
            {"audio": {"file_id": "a", "file_unique_id": "a", "duration": 2}},
            MediaPart(type="audio", media_id="a"),
        ),
        (
            {
                "video": {
                    "file_id": "m",
                    "file_unique_id": "m",
                    "width": 1,
                    "height": 1,
                    "duration": 1,
                }
            },
            MediaPart(type="video", media_id="m"),
        ),
        (
            {"video_note": {"file_id": "n", "file_unique_id": "n", "length": 1, "duration": 1}},
            MediaPart(type="video", media_id="n"),
        ),
        (
            {
                "sticker": {
                    "file_id": "st",
                    "file_unique_id": "st",
                    "type": "regular",
                    "width": 1,
                    "height": 1,
                    "is_animated": False,
                    "is_video": False,
                }
            },
            MediaPart(type="sticker", media_id="st"),
        ),
        (
            {"location": {"latitude": 38.7, "longitude": -9.1}},
            LocationPart(latitude=38.7, longitude=-9.1),
        ),
        (
            {
                "venue": {
                    "location": {"latitude": 38.7, "longitude": -9.1},
                    "title": "Cafe",
                    "address": "Rua 1",
                },
                "location": {"latitude": 38.7, "longitude": -9.1},
            },
            LocationPart(latitude=38.7, longitude=-9.1, name="Cafe", address="Rua 1"),
        ),
        (
            {"contact": {"phone_number": "+351900000000", "first_name": "Rui"}},
            ContactCardPart(name="Rui", phones=("+351900000000",)),
        ),
    ]
    for content, expected in cases:
        (event,) = parse(channel, {"message": message(5, **content)})
        assert isinstance(event, MessageReceived), content
        assert event.parts == (expected,), content
        assert event.external_id == f"{CHAT}:5"
        assert event.sender.name == "Ana Lima" and event.sender.language == "pt-BR"


def test_parse_start_edits_member_changes_and_groups(channel: TelegramChannel) -> None:
    (start,) = parse(channel, {"message": message(1, text="/start spring-sale")})
    assert isinstance(start, Postback)
    assert (start.payload, start.referral) == ("event:WELCOME", "spring-sale")

    (edited,) = parse(channel, {"edited_message": message(1, text="fixed", edit_date=1)})
    assert isinstance(edited, MessageEdited) and edited.parts == (TextPart(text="fixed"),)

    member = {
        "chat": PRIVATE,
        "from": USER,
        "date": 1,
        "old_chat_member": {"status": "member", "user": USER},
        "new_chat_member": {"status": "kicked", "user": USER, "until_date": 0},
    }
    (blocked,) = parse(channel, {"my_chat_member": member})
    assert isinstance(blocked, ContactBlocked) and blocked.blocked

    group = {"id": -100, "type": "group", "title": "Team"}
    assert parse(channel, {"message": message(1, chat=group, text="hi")}) == []
    assert parse(channel, {"poll": {"id": "p"}}) == []  # a kind we don't handle: no event


def test_a_malformed_update_in_a_batch_does_not_drop_its_neighbours(
    channel: TelegramChannel,
) -> None:
    good = update(1, message=message(1, text="one"))
    broken = update(2, message={"message_id": "x"})
    other = update(3, message=message(3, text="three"))
    events = channel.parse([good, broken, other])
    assert [e.external_id for e in events] == [f"{CHAT}:1", f"{CHAT}:3"]


# --- render (pure, golden) --------------------------------------------------------------


def outbound(*parts: Any, name: str | None = None) -> Outbound:
    return Outbound(
        message_id=1, conversation_id=1, recipient=str(CHAT), parts=parts, sender_name=name
    )


def test_render_splits_long_text_and_keeps_buttons_on_the_last_chunk(
    channel: TelegramChannel,
) -> None:
    text = ("word " * 1000).strip()  # 4999 characters
    replies = QuickRepliesPart(replies=(QuickReply(title="Yes", payload="YES"),))
    methods = channel.render(outbound(TextPart(text=text), replies))
    assert [len(m.text) for m in methods] == [4094, 904]
    assert methods[0].reply_markup is None
    assert methods[1].reply_markup.inline_keyboard[0][0].callback_data == "YES"


def test_render_degrades_buttons_whose_payload_is_too_long(channel: TelegramChannel) -> None:
    long = QuickReply(title="Plan", payload="x" * 65)
    (method,) = channel.render(outbound(TextPart(text="Pick:"), QuickRepliesPart(replies=(long,))))
    assert method.text == "Pick:\n\n1. Plan" and method.reply_markup is None


def test_render_media_location_and_agent_name(channel: TelegramChannel) -> None:
    methods = channel.render(
        outbound(
            TextPart(text="Here"),
            MediaPart(type="image", url="https://x/p.png", caption="map"),
            LocationPart(latitude=1, longitude=2),
            name="Bea",
        )
    )
    assert [type(m).__name__ for m in methods] == ["SendPhoto", "SendLocation", "SendMessage"]
    assert methods[-1].text == "Bea: Here"


async def _drained(app: Application) -> bool:
    return await count(app, work_items) == 0
