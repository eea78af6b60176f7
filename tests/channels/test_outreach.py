"""Reaching a contact outside the conversation: WhatsApp templates, Messenger message tags,
a template refused where it cannot be shown, and each channel's send budget (`per_second`).

Sent with the real channel code against the fake Graph API, which checks the shape of a
send as Meta does.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from pydantic import SecretStr, ValidationError

from bot.errors import PermanentFailure
from bot.keys import CHANNELS, DB, HTTP, SETTINGS
from bot.model import Outbound, TemplatePart, TextPart, parts_adapter
from bot.storage.tables import channels
from channels.base import ChannelConfig, ChannelContext
from channels.messenger import BROADCAST_TAGS, MessengerChannel
from channels.telegram import TelegramChannel, TelegramCredentials
from channels.whatsapp import WhatsAppChannel
from tests.channels.conftest import meta_channel
from tests.fakes.graph import FakeGraph

NUMBER_ID, WA_ID = "3003", "351912345678"
PAGE, PSID = "1001", "2002"
LONG_AGO = datetime.now(UTC) - timedelta(days=30)
OFFER = TemplatePart(name="december_offer", language="pt_PT", params=("Ana", "20%"))


@pytest.fixture
async def whatsapp(meta_hub: TestClient) -> WhatsAppChannel:
    found = await meta_channel(
        meta_hub, "whatsapp", phone_number_id=NUMBER_ID, access_token="WA-TOKEN"
    )
    assert isinstance(found, WhatsAppChannel)
    return found


@pytest.fixture
async def messenger(meta_hub: TestClient) -> MessengerChannel:
    found = await meta_channel(meta_hub, "messenger", page_id=PAGE, page_token="PAGE-TOKEN")
    assert isinstance(found, MessengerChannel)
    return found


def telegram_channel(hub: TestClient, **settings: Any) -> TelegramChannel:
    """A Telegram channel that never reaches Telegram (these tests fail before any call)."""
    app = hub.server.app
    credentials = TelegramCredentials(
        token=SecretStr("123456:TEST-token"), secret_token=SecretStr("secret")
    )
    config = ChannelConfig("telegram-x", 1, "telegram", "@bot", credentials, settings)
    return TelegramChannel(config, ChannelContext(app[SETTINGS], app[HTTP], app))


def outbound(recipient: str, *parts: Any, **fields: Any) -> Outbound:
    return Outbound(message_id=7, conversation_id=3, recipient=recipient, parts=parts, **fields)


# --- WhatsApp templates ----------------------------------------------------------------


def test_a_template_part_round_trips_and_needs_a_name_and_language() -> None:
    stored = parts_adapter.dump_python([OFFER], mode="json")
    assert stored == [
        {
            "type": "template",
            "name": "december_offer",
            "language": "pt_PT",
            "params": ["Ana", "20%"],
        }
    ]
    assert parts_adapter.validate_python(stored) == [OFFER]
    for wrong in ({"name": ""}, {"language": ""}):
        with pytest.raises(ValidationError):
            TemplatePart.model_validate({"name": "x", "language": "en_US", **wrong})


def test_render_a_template_as_the_cloud_apis_template_object(whatsapp: WhatsAppChannel) -> None:
    (body,) = whatsapp.render(outbound(WA_ID, OFFER))
    assert body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": WA_ID,
        "type": "template",
        "template": {
            "name": "december_offer",
            "language": {"code": "pt_PT"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Ana"},
                        {"type": "text", "text": "20%"},
                    ],
                }
            ],
        },
    }
    (plain,) = whatsapp.render(outbound(WA_ID, TemplatePart(name="hello_world", language="en_US")))
    assert plain["template"] == {"name": "hello_world", "language": {"code": "en_US"}}


async def test_a_template_reaches_a_contact_outside_the_24_hour_window(
    graph: FakeGraph, whatsapp: WhatsAppChannel
) -> None:
    graph.templates = {("december_offer", "pt_PT"): 2, ("hello_world", "en_US"): 0}
    receipt = await whatsapp.send(outbound(WA_ID, OFFER, last_inbound_at=LONG_AGO))
    assert receipt.external_id == "wamid.OUT1"
    ((number, body),) = graph.sent
    assert number == NUMBER_ID and body["type"] == "template" and body["to"] == WA_ID
    assert [p["text"] for p in body["template"]["components"][0]["parameters"]] == ["Ana", "20%"]
    hello = TemplatePart(name="hello_world", language="en_US")
    await whatsapp.send(outbound(WA_ID, hello, last_inbound_at=LONG_AGO))
    assert "components" not in graph.sent[-1][1]["template"]


async def test_text_beside_a_template_still_needs_the_window(
    graph: FakeGraph, whatsapp: WhatsAppChannel
) -> None:
    mixed = outbound(WA_ID, TextPart(text="Hi!"), OFFER, last_inbound_at=LONG_AGO)
    with pytest.raises(PermanentFailure, match="approved template"):
        await whatsapp.send(mixed)
    assert graph.sent == []
    await whatsapp.send(mixed.model_copy(update={"last_inbound_at": datetime.now(UTC)}))
    assert [body["type"] for _, body in graph.sent] == ["template", "text"]


async def test_meta_refusing_a_template_is_a_failure_that_says_why(
    graph: FakeGraph, whatsapp: WhatsAppChannel
) -> None:
    graph.templates = {("december_offer", "pt_PT"): 3}
    with pytest.raises(PermanentFailure, match="another number of parameters") as wrong_count:
        await whatsapp.send(outbound(WA_ID, OFFER))
    assert "localizable_params (2)" in wrong_count.value.reason
    unknown = TemplatePart(name="december_offer", language="en_US", params=("Ana", "20%", "x"))
    with pytest.raises(PermanentFailure, match="no approved template of that name"):
        await whatsapp.send(outbound(WA_ID, unknown))
    assert graph.sent == []


async def test_an_empty_parameter_fails_before_meta_is_called(
    graph: FakeGraph, whatsapp: WhatsAppChannel
) -> None:
    nameless = TemplatePart(name="december_offer", language="pt_PT", params=("20%", ""))
    with pytest.raises(PermanentFailure, match=r"parameter \{\{2\}\} is empty"):
        await whatsapp.send(outbound(WA_ID, nameless))
    assert graph.sent == []


@pytest.mark.parametrize(
    ("template", "culprit"),
    [
        ({"language": {"code": "en_US"}}, "'name'"),
        ({"name": "", "language": {"code": "en_US"}}, "'name'"),
        ({"name": "hello_world"}, "'code'"),
        ({"name": "hello_world", "language": {}}, "'code'"),
        ({"name": "hello_world", "language": "en_US"}, "'code'"),
        (
            {
                "name": "x",
                "language": {"code": "en_US"},
                "components": [{"type": "body", "parameters": [{"type": "text"}]}],
            },
            "'text'",
        ),
    ],
)
async def test_the_fake_graph_refuses_a_malformed_template_as_meta_does(
    graph: FakeGraph, whatsapp: WhatsAppChannel, template: dict[str, Any], culprit: str
) -> None:
    body = {"messaging_product": "whatsapp", "to": WA_ID, "type": "template", "template": template}
    with pytest.raises(PermanentFailure, match=r"\(100: \(#100\) Invalid parameter: .*" + culprit):
        await whatsapp.graph("POST", f"{NUMBER_ID}/messages", body)
    assert graph.sent == []


# --- elsewhere a template fails, never silently dropped ----------------------------------


async def test_other_channels_refuse_a_template(
    meta_hub: TestClient, graph: FakeGraph, messenger: MessengerChannel
) -> None:
    app = meta_hub.server.app
    async with app[DB].read() as conn:
        webchat_id = (
            await conn.execute(sa.select(channels.c.id).where(channels.c.kind == "webchat"))
        ).scalar_one()
    webchat = await app[CHANNELS].get(webchat_id)
    telegram = telegram_channel(meta_hub)
    message = outbound("42", TextPart(text="Your offer"), OFFER)
    for channel in (messenger, telegram, webchat):
        with pytest.raises(PermanentFailure, match="message templates are WhatsApp's only"):
            await channel.send(message)
    assert graph.sent == []


# --- Messenger message tags ----------------------------------------------------------------


@pytest.mark.parametrize("tag", sorted(BROADCAST_TAGS))
async def test_an_allowed_tag_reaches_a_contact_outside_the_window(
    graph: FakeGraph, messenger: MessengerChannel, tag: str
) -> None:
    await messenger.send(
        outbound(PSID, TextPart(text="Your order shipped"), last_inbound_at=LONG_AGO, tag=tag)
    )
    ((page, body),) = graph.sent
    assert page == PAGE
    assert (body["messaging_type"], body["tag"]) == ("MESSAGE_TAG", tag)
    assert body["message"] == {"text": "Your order shipped"}


async def test_a_tag_changes_nothing_inside_the_window_and_others_open_nothing(
    graph: FakeGraph, messenger: MessengerChannel
) -> None:
    recent = datetime.now(UTC) - timedelta(hours=1)
    await messenger.send(
        outbound(PSID, TextPart(text="Hi"), last_inbound_at=recent, tag="ACCOUNT_UPDATE")
    )
    assert graph.sent[-1][1]["messaging_type"] == "RESPONSE" and "tag" not in graph.sent[-1][1]
    for tag in ("HUMAN_AGENT", "ISSUE_RESOLUTION", None):  # a person's tag; a retired one
        with pytest.raises(PermanentFailure, match="outside Messenger's window"):
            await messenger.send(
                outbound(PSID, TextPart(text="Sale!"), last_inbound_at=LONG_AGO, tag=tag)
            )
    assert len(graph.sent) == 1
    # an agent's reply keeps its HUMAN_AGENT tag within 7 days whatever the outbound's tag
    days_ago = datetime.now(UTC) - timedelta(days=3)
    await messenger.send(
        outbound(PSID, TextPart(text="Sorry"), last_inbound_at=days_ago, sender_name="Bea")
    )
    assert graph.sent[-1][1]["tag"] == "HUMAN_AGENT"


async def test_the_fake_graph_refuses_a_tag_meta_does_not_allow(
    graph: FakeGraph, messenger: MessengerChannel
) -> None:
    body = {"recipient": {"id": PSID}, "message": {"text": "Sale!"}}
    for extra in (
        {"messaging_type": "MESSAGE_TAG", "tag": "ISSUE_RESOLUTION"},
        {"messaging_type": "MESSAGE_TAG"},
        {},
    ):
        with pytest.raises(PermanentFailure, match=r"\(100: \(#100\) "):
            await messenger.graph("POST", f"{PAGE}/messages", {**body, **extra})
    assert graph.sent == []


# --- the send budget -------------------------------------------------------------------------


async def test_per_second_is_the_channels_setting_else_the_platforms(
    meta_hub: TestClient, whatsapp: WhatsAppChannel, messenger: MessengerChannel
) -> None:
    assert (whatsapp.per_second, messenger.per_second) == (80.0, 40.0)
    faster = type(whatsapp)(replace(whatsapp.config, settings={"per_second": 250}), whatsapp.ctx)
    assert faster.per_second == 250.0
    # a bot with Telegram's paid broadcasts may send beyond 30 a second
    assert telegram_channel(meta_hub).per_second == 30.0
    assert telegram_channel(meta_hub, per_second=500).per_second == 500.0
    app = meta_hub.server.app
    async with app[DB].read() as conn:
        webchat_id = (
            await conn.execute(sa.select(channels.c.id).where(channels.c.kind == "webchat"))
        ).scalar_one()
    assert (await app[CHANNELS].get(webchat_id)).per_second == 30.0  # declares no capabilities
