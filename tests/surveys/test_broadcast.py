"""A survey sent to a view of 500 contacts: everyone asked once, at Telegram's pace."""

from __future__ import annotations

import bisect
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from bot.api.auth import create_token
from bot.clock import now
from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import contact_tags, contacts, conversations, identities, messages, tags
from channels.telegram import CAPABILITIES, TelegramChannel
from tests.channels.test_telegram import fake, hub  # noqa: F401
from tests.conftest import eventually
from tests.fakes.telegram import FakeTelegram
from tests.surveys.test_channels import telegram  # noqa: F401

CONTACTS = 500


async def test_five_hundred_contacts_within_the_platform_limits(
    hub: TestClient,  # noqa: F811
    fake: FakeTelegram,  # noqa: F811
    telegram: TelegramChannel,  # noqa: F811
) -> None:
    app = hub.server.app
    space = app[DEFAULT_SPACE]
    at = now()
    async with app[DB].write() as conn:
        token = await create_token(conn, space, None, "m", "manager")
        tag = (
            await conn.execute(
                tags.insert().values(space_id=space, name="beta").returning(tags.c.id)
            )
        ).scalar_one()
        for n in range(CONTACTS + 20):  # 20 without the tag: not in the view
            contact = (
                await conn.execute(
                    contacts.insert()
                    .values(space_id=space, name=f"c{n}", last_message_at=at)
                    .returning(contacts.c.id)
                )
            ).scalar_one()
            identity = (
                await conn.execute(
                    identities.insert()
                    .values(contact_id=contact, channel_id=telegram.id, external_id=str(10_000 + n))
                    .returning(identities.c.id)
                )
            ).scalar_one()
            await conn.execute(
                conversations.insert().values(
                    space_id=space,
                    contact_id=contact,
                    channel_id=telegram.id,
                    identity_id=identity,
                    status="closed",
                )
            )
            if n < CONTACTS:
                await conn.execute(contact_tags.insert().values(tag_id=tag, contact_id=contact))
    headers = {"Authorization": f"Bearer {token}"}
    survey = {
        "name": "beta",
        "steps": [{"id": "ok", "type": "question", "text": "Join the beta?", "answer": "yes_no"}],
    }
    made = await (await hub.post("/api/v1/surveys", json=survey, headers=headers)).json()
    view = await (
        await hub.post(
            "/api/v1/views",
            json={
                "name": "beta",
                "filter": {"all": [{"field": "tags", "op": "has_tag", "value": "beta"}]},
            },
            headers=headers,
        )
    ).json()
    resp = await hub.post(
        f"/api/v1/surveys/{made['id']}/send", json={"view_id": view["id"]}, headers=headers
    )
    assert await resp.json() == {"started": CONTACTS, "skipped": []}

    await eventually(lambda: _sent(fake, CONTACTS), timeout=60)
    sends = fake.sent("sendMessage")
    assert len({c.params["chat_id"] for c in sends}) == CONTACTS  # each asked once
    # no one-second window holds more than Telegram allows
    at = [c.at for c in sends]
    busiest = max(bisect.bisect_left(at, t + 1.0) - n for n, t in enumerate(at))
    assert busiest <= CAPABILITIES.per_second
    assert at[-1] - at[0] >= (CONTACTS - 1) / CAPABILITIES.per_second * 0.95
    async with app[DB].read() as conn:
        failed = (
            await conn.execute(sa.select(sa.func.count()).where(messages.c.status == "failed"))
        ).scalar()
    assert failed == 0


async def _sent(telegram_api: FakeTelegram, n: int) -> Any:
    return len(telegram_api.sent("sendMessage")) >= n
