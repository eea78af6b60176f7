# ruff: noqa: F811 - the Telegram fixtures are imported by name, then requested as arguments
"""Telegram against hostile or broken input, and the limits and refusals of its Bot API.

Updates of any shape, secrets that almost match, contacts who blocked the bot, groups
that take 20 messages a minute: none of it may answer 500 or break a platform's limit.
"""

from __future__ import annotations

import asyncio
import bisect
import json
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from bot.delivery.ratelimit import Limits
from bot.errors import PermanentFailure, RecipientBlocked, WebhookRejected
from bot.keys import HTTP, SETTINGS
from bot.model import TextPart
from bot.storage.tables import contacts, messages
from channels.base import ChannelContext
from channels.telegram import SECRET_HEADER, TelegramChannel
from tests.channels.malformed import mutations, raw_post
from tests.channels.test_telegram import (  # noqa: F401 - fixtures
    CHAT,
    PRIVATE,
    USER,
    channel,
    fake,
    hub,
    message,
    outbound,
    post,
    secret,
    update,
)
from tests.conftest import count
from tests.fakes.telegram import FakeTelegram


def test_the_secret_must_match_byte_for_byte(channel: TelegramChannel) -> None:
    """HTTP strips spaces around a header's value before we see it; what we do see is
    compared exactly, never trimmed or case-folded."""
    token = secret(channel)
    for given in (f" {token}", f"{token} ", f"{token}\t", f"\u00a0{token}", token.upper(), ""):
        with pytest.raises(WebhookRejected):
            channel.verify({SECRET_HEADER: given}, b"{}")
    channel.verify({SECRET_HEADER: token}, b"{}")


async def test_a_secret_header_that_is_not_utf8_is_401_not_500(
    hub: TestClient, channel: TelegramChannel
) -> None:
    body = json.dumps(update(1, message=message(1, text="hi"))).encode()
    url, token = f"/webhooks/{channel.id}", secret(channel).encode()
    for header in (token[:-1] + b"\xff", b"\xff" + token, token + b"\xc3"):
        assert await raw_post(hub, url, SECRET_HEADER.encode() + b": " + header, body) == 401
    assert await count(hub.server.app, messages) == 0
    assert await raw_post(hub, url, SECRET_HEADER.encode() + b": " + token, body) == 200


async def test_a_channel_without_a_secret_takes_no_webhooks(
    hub: TestClient, channel: TelegramChannel
) -> None:
    """Fail closed: an empty stored secret must not match an absent header."""
    credentials = channel.config.credentials.model_copy(update={"secret_token": SecretStr("")})
    config = replace(channel.config, credentials=credentials)
    bare = TelegramChannel(config, channel.ctx)
    for headers in ({}, {SECRET_HEADER: ""}):
        with pytest.raises(WebhookRejected):
            bare.verify(headers, b"{}")


@pytest.mark.parametrize(
    "description",
    [
        "Forbidden: bot was blocked by the user",
        "Forbidden: user is deactivated",
        "Forbidden: bot was kicked from the group chat",
        "Forbidden: bot was kicked from the supergroup chat",
        "Forbidden: bot is not a member of the supergroup chat",
    ],
)
async def test_a_contact_who_blocked_or_left_raises_recipient_blocked(
    fake: FakeTelegram, channel: TelegramChannel, description: str
) -> None:
    """The sender marks the identity blocked on RecipientBlocked and sends it nothing more."""
    fake.fail("sendMessage", 403, description)
    with pytest.raises(RecipientBlocked) as caught:
        await channel.send(outbound(TextPart(text="hi")))
    assert description in caught.value.reason


async def test_other_refusals_fail_the_message_without_blocking_the_contact(
    fake: FakeTelegram, channel: TelegramChannel
) -> None:
    fake.fail("sendMessage", 403, "Forbidden: bot can't initiate conversation with a user")
    fake.fail("sendMessage", 400, "Bad Request: chat not found")
    for _ in range(2):
        with pytest.raises(PermanentFailure) as caught:
            await channel.send(outbound(TextPart(text="hi")))
        assert not isinstance(caught.value, RecipientBlocked)


class VirtualClock:
    """Time that passes only when a rate limit waits: minutes of limits in milliseconds."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


async def test_a_group_gets_at_most_20_messages_a_minute(
    hub: TestClient, fake: FakeTelegram, channel: TelegramChannel
) -> None:
    """Telegram's limit for groups (negative chat ids), on top of the per-chat and
    per-bot ones; private chats are not held to it."""
    app, clock = hub.server.app, VirtualClock()
    limits = Limits(clock=clock, sleep=clock.sleep)
    paced = TelegramChannel(
        channel.config, ChannelContext(app[SETTINGS], app[HTTP], app, limits=limits)
    )

    async def send_times(chat: int, n: int) -> list[float]:
        started, times = clock.now, []
        for _ in range(n):
            await paced.send(
                outbound(TextPart(text="hi")).model_copy(update={"recipient": str(chat)})
            )
            times.append(clock.now - started)
        return times

    group = await send_times(-100123, 45)
    busiest = max(bisect.bisect_right(group, t + 60) - n for n, t in enumerate(group))
    assert busiest <= 20  # in any minute, both ends included
    assert group[-1] <= 45 * 60 / 15  # but at 15 a minute at least
    private = await send_times(CHAT, 45)
    assert private[-1] < 60  # one a second, a few at once
    assert len(fake.sent("sendMessage")) == 90


MALFORMED: list[Any] = [
    None,
    5,
    10**30,
    "update",
    [],
    [None, 1, "x", []],
    {},
    {"update_id": "x", "message": message(1, text="hi")},
    update(1, message=None),
    update(1, message="hi"),
    update(1, message=[message(1, text="hi")]),
    update(1, message=message(1, text=5)),
    update(1, message=message(1, text="hi", date=10**30)),
    update(1, message=message(1, text="hi", date=1e308)),
    update(1, message=message(1, text="hi", date=float("inf"))),
    update(1, message=message(1, text="hi", chat={"id": "x", "type": "private"})),
    update(1, message=message(1, text="hi", chat={"id": [CHAT], "type": "private"})),
    update(1, message=message(1, location={"latitude": float("nan"), "longitude": 1})),
    update(1, message=message(1, location={"latitude": 1e308, "longitude": 1})),
    update(1, message=message(1, photo={"file_id": "p"})),
    update(1, message=message(1, contact={"phone_number": 5})),
    update(1, edited_message=message(1, text=["fixed"])),
    update(1, callback_query={"id": {"x": 1}, "from": USER, "data": "P", "chat_instance": "c"}),
    update(1, callback_query={"id": "q", "from": "x", "data": "P", "chat_instance": "c"}),
    update(1, my_chat_member={"chat": PRIVATE, "from": USER, "new_chat_member": "kicked"}),
]


async def test_malformed_updates_are_200_and_store_nothing(
    hub: TestClient, channel: TelegramChannel
) -> None:
    """A 4xx or 5xx makes Telegram redeliver (and pile up): what is not understood is dropped."""
    for n, body in enumerate(MALFORMED):
        resp = await post(hub, channel, body)
        assert resp.status == 200, (n, body, await resp.text())
        answer = await resp.json()  # a callback's answer names a query by its string id
        assert isinstance(answer.get("callback_query_id", ""), str), (n, body)
    app = hub.server.app
    assert await count(app, messages) == 0 and await count(app, contacts) == 0


def test_parse_is_total_whatever_is_wrong_wherever(channel: TelegramChannel) -> None:
    query = {"id": "q1", "from": USER, "chat_instance": "x", "data": "P", "message": message(7)}
    updates = [
        update(1, message=message(1, text="one", location={"latitude": 1, "longitude": 2})),
        update(2, message=message(2, text="two")),
        update(3, callback_query=query),
    ]
    for at, broken in mutations(updates):
        try:
            events = channel.parse(broken)
            channel.webhook_response(broken[-1] if isinstance(broken, list) and broken else broken)
        except Exception as exc:  # the assertion says where
            raise AssertionError(f"{at} = {broken!r}: {exc!r}") from exc
        assert isinstance(events, list)
        if at[:1] == (0,) and at != (0,):
            assert f"{CHAT}:2" in [getattr(e, "external_id", None) for e in events], at
    assert len(channel.parse(updates)) == 3
