"""The Bot Framework channel through the hub, with Microsoft's SDK against the fake Bot
Framework services: tokens checked in, the app's token out, Teams activities both ways,
the connector's errors, Teams' limits a conversation."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from bot.delivery.media import media_path
from bot.errors import ConfigError
from bot.keys import DB, DEFAULT_SPACE, SETTINGS
from bot.model import Outbound, TextPart
from bot.storage.tables import channels, identities, messages
from bot.workspace.channel_admin import add_channel
from channels.botframework import BotFrameworkChannel
from tests.channels.conftest import APP_ID, APP_PASSWORD, from_teams, teams_channel
from tests.conftest import count, eventually
from tests.fakes.botframework import (
    App,
    FakeBotFramework,
    conversation_update,
    installation_update,
    mention,
    message_reaction,
)

MEGAN = "a:1personal-chat-with-megan-bowen"  # the builders' personal conversation
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


@pytest.fixture
async def channel(bf_hub: TestClient) -> BotFrameworkChannel:
    return await teams_channel(bf_hub)


async def inbound_parts(hub: TestClient) -> list[Any]:
    async with hub.server.app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(messages.c.parts).where(messages.c.direction == "in").order_by(messages.c.id)
        )
        return [row.parts for row in rows]


async def outbound(hub: TestClient) -> list[Any]:
    async with hub.server.app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(messages.c.status, messages.c.error, messages.c.external_id)
            .where(messages.c.direction == "out")
            .order_by(messages.c.id)
        )
        return list(rows)


# --- admin ----------------------------------------------------------------------------


async def test_adding_tries_the_app_at_the_login_endpoint_and_shows_the_endpoint(
    bf_hub: TestClient, bf: FakeBotFramework
) -> None:
    app = bf_hub.server.app
    with pytest.raises(ConfigError, match="AADSTS7000215"):
        await teams_channel(bf_hub, app_password="wrong")
    with pytest.raises(ConfigError, match="--app-id, --app-password"):
        await add_channel(app, app[DEFAULT_SPACE], "botframework", {})
    assert await count(app, channels, channels.c.kind == "botframework") == 0

    channel = await teams_channel(bf_hub)
    assert bf.token_requests[-1] == ("botframework.com", APP_ID)
    assert channel.config.name == f"Bot Framework app {APP_ID}"
    async with app[DB].read() as conn:
        stored = (
            await conn.execute(sa.select(channels.c.credentials).where(channels.c.id == channel.id))
        ).scalar_one()
    assert APP_PASSWORD not in stored


async def test_a_single_tenant_app_logs_in_at_its_tenant(
    bf_hub: TestClient, bf: FakeBotFramework
) -> None:
    bf.apps["single-app"] = App("single-secret", tenant="contoso-tenant")
    await teams_channel(
        bf_hub, app_id="single-app", app_password="single-secret", tenant_id="contoso-tenant"
    )
    assert bf.token_requests[-1] == ("contoso-tenant", "single-app")


# --- in -------------------------------------------------------------------------------


async def test_unsigned_or_mis_signed_activities_are_401_and_store_nothing(
    bf_hub: TestClient, bf: FakeBotFramework, channel: BotFrameworkChannel
) -> None:
    url = bf.service_url
    refused = {
        "none": "",
        "not a token": "Bearer abc.def",
        "basic": "Basic dXNlcjpwYXNz",
        "another app's": bf.sign(channel.app_id, url, audience="some-other-app"),
        "expired": bf.sign(channel.app_id, url, expired=True),
        "forged": bf.sign(channel.app_id, url, foreign_key=True),
        "another issuer": bf.sign(channel.app_id, url, issuer="https://evil.example.com"),
        "another service": bf.sign(channel.app_id, "https://evil.example.com/"),
        "unknown key": bf.sign(channel.app_id, url, kid="not-a-key"),
    }
    for why, header in refused.items():
        resp = await from_teams(bf_hub, bf, channel, authorization=header, text=why)
        assert resp.status == 401, why
    assert await count(bf_hub.server.app, messages) == 0
    assert (await from_teams(bf_hub, bf, channel, text="signed")).status == 200
    assert await count(bf_hub.server.app, messages) >= 1


async def test_a_message_gets_the_bots_reply_with_the_apps_token(
    bf_hub: TestClient, bf: FakeBotFramework, channel: BotFrameworkChannel
) -> None:
    logins = len(bf.token_requests)  # the check when the channel was added
    resp = await from_teams(bf_hub, bf, channel, text="hi", activity_id="1700000000001")
    assert resp.status == 200
    (sent,) = await bf.wait_for(1)
    assert sent.token in bf.issued and bf.issued[sent.token] == APP_ID
    assert sent.conversation_id == MEGAN and sent.reply_to_id is None
    activity = sent.activity
    assert activity["type"] == "message"
    assert activity["from"]["id"] == f"28:{APP_ID}"
    assert activity["recipient"]["name"] == "Megan Bowen"
    assert activity["channelData"] == {"tenant": {"id": "tenant-1"}}
    (card,) = activity["attachments"]
    assert card["contentType"] == "application/vnd.microsoft.card.hero"
    assert card["content"]["text"].startswith("Hi! I'm the ChanCenter assistant")
    buttons = card["content"]["buttons"]
    assert [b["value"] for b in buttons] == [
        {"payload": "Opening hours"},
        {"payload": "Pricing"},
        {"payload": "Talk to a human"},
    ]
    assert {b["type"] for b in buttons} == {"messageBack"}

    # the contact chooses a button: its value comes back as a postback
    resp = await from_teams(
        bf_hub, bf, channel, text="Pricing", value={"payload": "Pricing"}, activity_id="17002"
    )
    assert resp.status == 200
    (_, priced) = await bf.wait_for(2)
    assert "Team is $29 per agent" in priced.activity["attachments"][0]["content"]["text"]
    # one login for both replies: the token is cached
    assert len(bf.token_requests) == logins + 1
    # a redelivered activity is a no-op
    await from_teams(bf_hub, bf, channel, text="hi", activity_id="1700000000001")
    assert (await inbound_parts(bf_hub))[-1] == [
        {"type": "postback", "payload": "Pricing", "title": "Pricing"}
    ]
    assert len(await inbound_parts(bf_hub)) == 2
    await eventually(lambda: _all_sent(bf_hub))
    assert len(bf.sent) == 2


async def _all_sent(hub: TestClient) -> bool:
    return all(row.status == "sent" for row in await outbound(hub))


async def test_the_contact_keeps_a_conversation_reference_and_a_mention_is_stripped(
    bf_hub: TestClient, bf: FakeBotFramework, channel: BotFrameworkChannel
) -> None:
    text, entity = mention("opening hours?", APP_ID)
    team = "19:general@thread.tacv2"
    resp = await from_teams(
        bf_hub, bf, channel, text=text, entities=[entity], conversation_id=team,
        conversation_type="channel",
    )  # fmt: skip
    assert resp.status == 200
    assert (await inbound_parts(bf_hub))[0] == [{"type": "text", "text": "opening hours?"}]
    (sent,) = await bf.wait_for(1)
    assert sent.conversation_id == team  # answered where they wrote
    async with bf_hub.server.app[DB].read() as conn:
        row = (await conn.execute(sa.select(identities.c.external_id))).one()
    assert row.external_id.startswith("msteams:29:")


async def test_installing_welcomes_and_uninstalling_blocks(
    bf_hub: TestClient, bf: FakeBotFramework, channel: BotFrameworkChannel
) -> None:
    app = bf_hub.server.app
    added = conversation_update(app_id=APP_ID, service_url=bf.service_url)
    assert (await from_teams(bf_hub, bf, channel, added)).status == 200
    (welcome,) = await bf.wait_for(1)
    assert "ChanCenter assistant" in welcome.activity["attachments"][0]["content"]["text"]

    removed = installation_update("remove", app_id=APP_ID, service_url=bf.service_url)
    assert (await from_teams(bf_hub, bf, channel, removed)).status == 200
    assert await _blocked(app) == 1
    back = installation_update("add", app_id=APP_ID, service_url=bf.service_url)
    assert (await from_teams(bf_hub, bf, channel, back)).status == 200
    assert await _blocked(app) == 0


async def _blocked(app: Any) -> int:
    async with app[DB].read() as conn:
        return (await conn.execute(sa.select(identities.c.blocked))).scalar_one()


async def test_a_reaction_names_our_message(
    bf_hub: TestClient, bf: FakeBotFramework, channel: BotFrameworkChannel
) -> None:
    await from_teams(bf_hub, bf, channel, text="hi")
    await bf.wait_for(1)
    await eventually(lambda: _all_sent(bf_hub))
    (ours,) = await outbound(bf_hub)
    replied = bf.sent[0].id
    reaction = message_reaction(replied, "heart", app_id=APP_ID, service_url=bf.service_url)
    assert (await from_teams(bf_hub, bf, channel, reaction)).status == 200
    assert (await inbound_parts(bf_hub))[-1] == [
        {"type": "reaction", "emoji": "❤️", "to_external_id": ours.external_id}
    ]


async def test_a_pasted_picture_reaches_agents_through_the_media_proxy(
    bf_hub: TestClient, bf: FakeBotFramework, channel: BotFrameworkChannel
) -> None:
    """Teams keeps a pasted picture at the connector, behind the bot's token; a picture
    elsewhere stays a link, and the token is never sent there."""
    bf.attachments["0-cus-d1-abc"] = ("image/png", PNG)
    pasted = {"contentType": "image/png", "contentUrl": bf.attachment_url("0-cus-d1-abc")}
    gone = {"contentType": "image/png", "contentUrl": bf.attachment_url("0-cus-d1-gone")}
    public = {"contentType": "image/png", "contentUrl": "https://example.com/cat.png"}
    await from_teams(bf_hub, bf, channel, text="look", attachments=[pasted, gone, public])
    (parts,) = await inbound_parts(bf_hub)
    text, kept, missing, linked = parts
    assert text == {"type": "text", "text": "look"}
    assert kept["type"] == "image" and kept["url"] is None and kept["media_id"]
    assert linked["url"] == "https://example.com/cat.png" and linked["media_id"] is None
    key = bf_hub.server.app[SETTINGS].signing_key()
    got = await bf_hub.get(media_path(key, channel.id, kept["media_id"]))
    assert got.status == 200 and got.content_type == "image/png"
    assert await got.read() == PNG
    assert (await bf_hub.get(media_path(key, channel.id, missing["media_id"]))).status == 404
    forged = media_path(key, channel.id, kept["media_id"]).replace("sig=", "sig=x")
    assert (await bf_hub.get(forged)).status == 403


async def test_other_activity_types_are_200_and_dropped(
    bf_hub: TestClient, bf: FakeBotFramework, channel: BotFrameworkChannel
) -> None:
    for kind in ("typing", "event", "invoke", "endOfConversation"):
        resp = await from_teams(bf_hub, bf, channel, type=kind, text=None)
        assert resp.status == 200 and (await resp.json())["events"] == 0, kind
    assert await count(bf_hub.server.app, messages) == 0


# --- out ------------------------------------------------------------------------------


async def test_throttling_and_outages_are_retried_honouring_retry_after(
    bf_hub: TestClient, bf: FakeBotFramework, channel: BotFrameworkChannel
) -> None:
    bf.fail(429, retry_after=1, message="Too many requests")
    bf.fail(503)
    started = time.monotonic()
    await from_teams(bf_hub, bf, channel, text="hi")
    await bf.wait_for(1, timeout=20)
    assert time.monotonic() - started >= 1.0  # waited as the connector asked
    assert bf.refused == 2
    await eventually(lambda: _all_sent(bf_hub))


async def test_a_refused_token_fails_the_message_with_the_reason(
    bf_hub: TestClient, bf: FakeBotFramework, channel: BotFrameworkChannel
) -> None:
    bf.fail(401, message="Authorization has been denied for this request.")
    await from_teams(bf_hub, bf, channel, text="hi")

    async def failed() -> str | None:
        rows = await outbound(bf_hub)
        return rows[0].error if rows and rows[0].status == "failed" else None

    reason = await eventually(failed)
    assert "401" in reason and "denied for this request" in reason
    assert bf.sent == []


async def test_a_conversation_is_paced_within_teams_limits(
    bf_hub: TestClient, bf: FakeBotFramework, channel: BotFrameworkChannel
) -> None:
    await from_teams(bf_hub, bf, channel, text="hi")  # the contact's reference
    await bf.wait_for(1)
    async with bf_hub.server.app[DB].read() as conn:
        address = (await conn.execute(sa.select(identities.c.address))).scalar_one()
    sends = 12
    arrived = []
    for n in range(sends):
        await channel.send(
            Outbound(
                message_id=100 + n,
                conversation_id=1,
                recipient="msteams:x",
                address=address,
                parts=(TextPart(text=f"line {n}"),),
            )
        )
        arrived.append(time.monotonic())
    # never more than 7 in any second (the first send also had the welcome before it)
    assert all(arrived[n + 7] - arrived[n] >= 0.9 for n in range(sends - 7))
    assert [s.activity["text"] for s in bf.sent[1:]] == [f"line {n}" for n in range(sends)]
