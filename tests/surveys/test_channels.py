"""One YAML survey on Telegram, Messenger and WhatsApp: native buttons on each, answers by
tap or by typing, and the custom fields filled."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from bot.api.auth import create_token
from bot.keys import CHANNELS, DB, DEFAULT_SPACE
from bot.storage.tables import field_values, identities, outbox, work_items
from bot.workspace.channel_admin import add_channel
from bot.workspace.contacts import create_field
from channels.messenger import MessengerChannel
from channels.telegram import TelegramChannel
from channels.whatsapp import WhatsAppChannel
from tests.channels import test_messenger as fb
from tests.channels import test_telegram as tg
from tests.channels import test_whatsapp as wa
from tests.channels.conftest import graph, meta_channel, meta_hub, signed  # noqa: F401
from tests.channels.test_telegram import fake, hub  # noqa: F401
from tests.conftest import count, eventually
from tests.fakes.graph import FakeGraph
from tests.fakes.telegram import FakeTelegram

SURVEY = """
name: profile
steps:
  - id: plan
    type: question
    text: Which plan?
    answer: choice
    options: [free, pro]
    save_to: plan
  - id: size
    type: question
    text: How big is your team?
    answer: choice
    options: ["1", "2-5", "6-20", "21-100", "100+"]
    save_to: size
completed_text: Saved, thanks!
"""


@pytest.fixture
async def whatsapp(meta_hub: TestClient) -> WhatsAppChannel:  # noqa: F811
    found = await meta_channel(
        meta_hub, "whatsapp", phone_number_id=wa.NUMBER_ID, access_token="WA-TOKEN"
    )
    assert isinstance(found, WhatsAppChannel)
    return found


@pytest.fixture
async def messenger(meta_hub: TestClient) -> MessengerChannel:  # noqa: F811
    found = await meta_channel(meta_hub, "messenger", page_id=fb.PAGE, page_token="PAGE-TOKEN")
    assert isinstance(found, MessengerChannel)
    return found


@pytest.fixture
async def telegram(hub: TestClient) -> TelegramChannel:  # noqa: F811
    app = hub.server.app
    info = await add_channel(app, app[DEFAULT_SPACE], "telegram", {"token": tg.TOKEN})
    found = await app[CHANNELS].get(info.id)
    assert isinstance(found, TelegramChannel)
    return found


async def run_survey_setup(client: TestClient, external_id: str) -> dict[str, str]:
    """Fields and the survey; then the survey is sent to the contact behind `external_id`."""
    app = client.server.app
    async with app[DB].write() as conn:
        token = await create_token(conn, app[DEFAULT_SPACE], None, "m", "manager")
        await create_field(conn, app[DEFAULT_SPACE], "plan", "", "choice", ["free", "pro"])
        await create_field(conn, app[DEFAULT_SPACE], "size", "", "text", [])
    headers = {"Authorization": f"Bearer {token}"}
    made = await client.post(
        "/api/v1/surveys", data=SURVEY, headers={**headers, "Content-Type": "application/yaml"}
    )
    assert made.status == 201, await made.text()
    await eventually(lambda: _idle(app))
    async with app[DB].read() as conn:
        contact = (
            await conn.execute(
                sa.select(identities.c.contact_id).where(identities.c.external_id == external_id)
            )
        ).scalar_one()
    sent = await client.post(
        f"/api/v1/surveys/{(await made.json())['id']}/send",
        json={"contact_ids": [contact]},
        headers=headers,
    )
    assert (await sent.json())["started"] == 1
    await eventually(lambda: _idle(app))
    return headers


async def saved(client: TestClient) -> set[Any]:
    async with client.server.app[DB].read() as conn:
        return set((await conn.execute(sa.select(field_values.c.value_text))).scalars())


async def test_on_whatsapp_buttons_then_a_list(
    meta_hub: TestClient,  # noqa: F811
    graph: FakeGraph,  # noqa: F811
    whatsapp: WhatsAppChannel,
) -> None:
    channel = whatsapp
    hook = f"/webhooks/{channel.id}"
    raw, headers = signed(wa.change([wa.wa("wamid.1", "text", text={"body": "hi"})]))
    assert (await meta_hub.post(hook, data=raw, headers=headers)).status == 200
    await run_survey_setup(meta_hub, wa.WA_ID)
    question = graph.sent[-1][1]
    assert question["interactive"]["type"] == "button"  # two options: reply buttons
    assert [b["reply"]["id"] for b in question["interactive"]["action"]["buttons"]] == [
        "free",
        "pro",
    ]

    tap = {"type": "button_reply", "button_reply": {"id": "pro", "title": "pro"}}
    raw, headers = signed(wa.change([wa.wa("wamid.2", "interactive", interactive=tap)]))
    await meta_hub.post(hook, data=raw, headers=headers)
    await eventually(lambda: _idle(meta_hub.server.app))
    question = graph.sent[-1][1]
    assert question["interactive"]["type"] == "list"  # five options: a list
    rows = question["interactive"]["action"]["sections"][0]["rows"]
    assert [r["title"] for r in rows] == ["1", "2-5", "6-20", "21-100", "100+"]

    raw, headers = signed(wa.change([wa.wa("wamid.3", "text", text={"body": "3"})]))  # typed
    await meta_hub.post(hook, data=raw, headers=headers)
    await eventually(lambda: _idle(meta_hub.server.app))
    assert graph.sent[-1][1]["text"]["body"] == "Saved, thanks!"
    assert await saved(meta_hub) == {"pro", "6-20"}


async def test_on_messenger_quick_replies(
    meta_hub: TestClient,  # noqa: F811
    graph: FakeGraph,  # noqa: F811
    messenger: MessengerChannel,
) -> None:
    channel = messenger
    hook = f"/webhooks/{channel.id}"
    raw, headers = signed(fb.page(fb.msg("m1", text="hi")))
    await meta_hub.post(hook, data=raw, headers=headers)
    await run_survey_setup(meta_hub, fb.PSID)
    question = graph.sent[-1][1]["message"]
    assert question["text"] == "Which plan?"
    assert [q["payload"] for q in question["quick_replies"]] == ["free", "pro"]

    raw, headers = signed(fb.page(fb.msg("m2", text="free", quick_reply={"payload": "free"})))
    await meta_hub.post(hook, data=raw, headers=headers)
    await eventually(lambda: _idle(meta_hub.server.app))
    raw, headers = signed(fb.page(fb.msg("m3", text="two to five")))  # not an option
    await meta_hub.post(hook, data=raw, headers=headers)
    await eventually(lambda: _idle(meta_hub.server.app))
    assert "please choose one of: 1. 1, 2. 2-5" in graph.sent[-2][1]["message"]["text"]
    raw, headers = signed(fb.page(fb.msg("m4", text="2-5", quick_reply={"payload": "2-5"})))
    await meta_hub.post(hook, data=raw, headers=headers)
    await eventually(lambda: _idle(meta_hub.server.app))
    assert graph.sent[-1][1]["message"]["text"] == "Saved, thanks!"
    assert await saved(meta_hub) == {"free", "2-5"}


async def test_on_telegram_inline_keyboards(
    hub: TestClient,  # noqa: F811
    fake: FakeTelegram,  # noqa: F811
    telegram: TelegramChannel,
) -> None:
    channel = telegram
    await tg.post(hub, channel, tg.update(1, message=tg.message(1, text="hi")))
    await run_survey_setup(hub, str(tg.CHAT))
    question = fake.sent("sendMessage")[-1].params
    keyboard = question["reply_markup"]["inline_keyboard"]
    assert question["text"] == "Which plan?"
    assert [b["callback_data"] for row in keyboard for b in row] == ["free", "pro"]
    query = {
        "id": "cbq-9",
        "from": tg.USER,
        "chat_instance": "x",
        "data": "pro",
        "message": tg.message(50, text="Which plan?"),
    }
    resp = await tg.post(hub, channel, tg.update(2, callback_query=query))
    assert (await resp.json())["method"] == "answerCallbackQuery"
    await eventually(lambda: _idle(hub.server.app))
    await tg.post(hub, channel, tg.update(3, message=tg.message(3, text="21 - 100")))
    await eventually(lambda: _idle(hub.server.app))
    await eventually(lambda: fake.sent("sendMessage")[-1].params["text"] == "Saved, thanks!")
    assert await saved(hub) == {"pro", "21-100"}


async def _idle(app: Any) -> bool:
    return await count(app, work_items) == 0 and await count(app, outbox) == 0
