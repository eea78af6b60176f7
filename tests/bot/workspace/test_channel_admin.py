"""The one implementation of channel administration: changes, the `/channel ...` words
(chat and Slack), and each channel's health from the messages it carried.

Covers `bot.workspace.channel_admin`, `bot.workspace.channel_health`.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.clock import db_datetime
from bot.errors import NotFound, PermanentFailure, Unprocessable
from bot.keys import CHANNELS, DB, DEFAULT_SPACE
from bot.storage.tables import messages, outbox, work_items
from bot.workspace.bootstrap import create_space
from bot.workspace.channel_admin import (
    change_channel,
    channel_command,
    get_channel,
    list_channels,
)
from tests.bot.pipeline.test_webhooks import body, post
from tests.conftest import add_channel, count, eventually
from tests.fakes.echo_channel import EchoChannel


async def test_a_change_is_validated_merged_and_used_at_once(
    app: Application, echo: EchoChannel
) -> None:
    space = app[DEFAULT_SPACE]
    assert echo.per_second == 30  # the default of a channel without capabilities
    info = await change_channel(app, space, echo.id, settings={"per_second": 12})
    assert info.settings == {"per_second": 12}
    renamed = await change_channel(app, space, echo.id, name=" Echo desk ")
    assert (renamed.name, renamed.settings) == ("Echo desk", {"per_second": 12})
    rebuilt = await app[CHANNELS].get(echo.id)
    assert rebuilt is not echo and rebuilt.per_second == 12

    with pytest.raises(Unprocessable, match="unknown setting; known: per_second, groups"):
        await change_channel(app, space, echo.id, settings={"speed": 1})
    with pytest.raises(Unprocessable, match="echo channels have no group chats"):
        await change_channel(app, space, echo.id, settings={"groups": True})
    with pytest.raises(Unprocessable, match="name: from 1 to 200"):
        await change_channel(app, space, echo.id, name="x" * 201)
    async with app[DB].write() as conn:
        other = await create_space(conn, "Rival", "Rival", default=False, webchat=False)
    with pytest.raises(NotFound):
        await change_channel(app, other.space_id, echo.id, name="mine now")
    assert (await get_channel(app, space, echo.id)).name == "Echo desk"


async def test_the_channel_command_sets_and_lists(app: Application, echo: EchoChannel) -> None:
    space = app[DEFAULT_SPACE]
    said = await channel_command(app, space, f"/channel set {echo.id} per_second=5 name=Desk")
    assert said == f"Changed {echo.id}: Desk (per_second=5.0)"
    said = await channel_command(app, space, f"/channel set {echo.id} per_second=")
    assert said == f"Changed {echo.id}: Desk"
    assert "no group chats" in await channel_command(
        app, space, f"/channel set {echo.id} groups=on"
    )
    assert (await channel_command(app, space, f"/channel set {echo.id}")).startswith("Usage")
    assert f"{echo.id}  echo  Desk" in await channel_command(app, space, "/channel list")


async def test_health_is_each_channels_newest_message_in_and_failure(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    space = app[DEFAULT_SPACE]
    quiet = await add_channel(app, "echo", space)  # no traffic
    for n, reason in ((1, "first refusal"), (2, "second refusal")):
        echo.failures = [PermanentFailure(reason)]
        await post(client, echo.id, body({"id": f"m{n}", "from": f"u{n}", "text": "hi"}))
        await eventually(lambda n=n: _settled(app, n))

    found = {info.id: info.health for info in await list_channels(app, space)}
    busy = found[echo.id]
    assert busy.last_send_error is not None
    assert busy.last_send_error.error == "second refusal"
    async with app[DB].read() as conn:
        newest_in = (
            await conn.execute(
                sa.select(messages.c.created_at)
                .where(messages.c.external_id == "m2")
                .where(messages.c.channel_id == echo.id)
            )
        ).scalar_one()
    assert busy.last_received_at == db_datetime(newest_in)
    assert (found[quiet].last_received_at, found[quiet].last_send_error) == (None, None)
    assert (await get_channel(app, space, echo.id)).health == busy
    assert busy.as_json()["last_send_error"]["error"] == "second refusal"


async def _settled(app: Application, failed: int) -> bool:
    """`failed` messages failed, and nothing is left to handle or send."""
    return (
        await count(app, messages, messages.c.status == "failed") >= failed
        and await count(app, work_items) == 0
        and await count(app, outbox) == 0
    )
