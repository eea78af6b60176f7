"""The runner: each recipient sent once, in the contact's history, skipped with a reason,
paused, resumed, cancelled, retried, and reported with replies counted."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.clock import now
from bot.errors import RetryLater
from bot.keys import DB
from bot.storage.tables import (
    broadcast_recipients,
    contacts,
    conversations,
    identities,
    messages,
    shortcuts,
    views,
    work_items,
)
from broadcasts import planning, store
from broadcasts.planning import NO_IDENTITY, UNSUBSCRIBED, WITH_PERSON
from broadcasts.runner import RUNNER
from broadcasts.store import counts
from tests.broadcasts.helpers import act, create, finished, reasons, recipients, status, view
from tests.conftest import add_channel, count, eventually
from tests.fakes.echo_channel import EchoChannel
from tests.handlers.test_handover import agent, say


async def contact_of(app: Application, who: str) -> int:
    async with app[DB].read() as conn:
        return (
            await conn.execute(
                sa.select(identities.c.contact_id).where(identities.c.external_id == who)
            )
        ).scalar_one()


async def test_each_contact_gets_it_once_in_their_history_and_the_bot_sleeps(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    for who in ("ana", "ben", "cleo"):
        await say(client, app, echo, "hello", who)
    async with app[DB].write() as conn:  # Ana's conversation was closed: it stays closed
        await conn.execute(
            contacts.update()
            .where(contacts.c.id == await contact_of(app, "ana"))
            .values(name="Ana Lima")
        )
        await conn.execute(
            conversations.update()
            .where(conversations.c.contact_id == await contact_of(app, "ana"))
            .values(status="closed")
        )
    handled = await count(app, work_items)
    before = len(echo.sent)
    broadcast_id = await create(app, echo.id)
    await act(app, broadcast_id, "start")
    report = await finished(app, broadcast_id)

    sent = echo.sent[before:]
    assert sorted(o.recipient for o in sent) == ["ana", "ben", "cleo"]
    texts = {o.recipient: o.parts[0].text for o in sent}  # type: ignore[union-attr]
    assert texts == {"ana": "Hi Ana", "ben": "Hi there", "cleo": "Hi there"}
    assert report["sent"] == 3 and report["total"] == 3 and report["queued"] == 0
    async with app[DB].read() as conn:
        history = (
            await conn.execute(
                sa.select(messages.c.sender_type, messages.c.sender_id, messages.c.status).where(
                    messages.c.sender_type == "broadcast"
                )
            )
        ).all()
        ana_status = (
            (
                await conn.execute(
                    sa.select(conversations.c.status).where(
                        conversations.c.contact_id == await contact_of(app, "ana")
                    )
                )
            )
            .scalars()
            .all()
        )
    assert history == [("broadcast", str(broadcast_id), "sent")] * 3
    assert ana_status == ["closed"]  # not reopened, and no new conversation
    assert await count(app, work_items) == handled  # nobody's bot was woken


async def test_skipped_contacts_are_listed_with_why(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    for who in ("open", "unsubscribed", "with-person", "blocked"):
        await say(client, app, echo, "hello", who)
    other = await add_channel(app, "webchat")
    async with app[DB].write() as conn:
        await conn.execute(  # a contact who only ever wrote on another channel
            contacts.insert().values(space_id=1, name="Elsewhere")
        )
        elsewhere = (await conn.execute(sa.select(sa.func.max(contacts.c.id)))).scalar_one()
        await conn.execute(
            identities.insert().values(contact_id=elsewhere, channel_id=other, external_id="w1")
        )
        await conn.execute(
            contacts.update()
            .where(contacts.c.id == await contact_of(app, "unsubscribed"))
            .values(unsubscribed_at=sa.func.now())
        )
        await conn.execute(
            identities.update().where(identities.c.external_id == "blocked").values(blocked=1)
        )
    ana = await agent(app, "Ana", "online")
    async with app[DB].write() as conn:
        await conn.execute(
            conversations.update()
            .where(conversations.c.contact_id == await contact_of(app, "with-person"))
            .values(handler="agent", assignee_id=ana)
        )
    before = len(echo.sent)
    broadcast_id = await create(app, echo.id)
    await act(app, broadcast_id, "start")
    report = await finished(app, broadcast_id)

    assert [o.recipient for o in echo.sent[before:]] == ["open"]
    why = await reasons(app, broadcast_id)
    assert why[await contact_of(app, "open")] is None
    assert why[await contact_of(app, "unsubscribed")] == UNSUBSCRIBED
    assert why[await contact_of(app, "with-person")] == WITH_PERSON
    assert "blocked" in (why[await contact_of(app, "blocked")] or "")
    assert why[elsewhere] == NO_IDENTITY
    assert report["skipped"] == 4 and report["sent"] == 1


async def test_people_chats_can_be_included(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await say(client, app, echo, "hello", "with-person")
    async with app[DB].write() as conn:
        await conn.execute(conversations.update().values(handler="waiting"))
    broadcast_id = await create(app, echo.id, settings={"skip_with_person": False})
    await act(app, broadcast_id, "start")
    assert (await finished(app, broadcast_id))["sent"] == 1


async def test_pause_stops_and_resume_goes_on_where_it_stopped(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await contacts_on(app, echo.id, 90)  # 30 a second: 90 contacts take three seconds
    broadcast_id = await create(app, echo.id)
    await act(app, broadcast_id, "start")
    await eventually(lambda: len(echo.sent) >= 20)
    await act(app, broadcast_id, "pause")
    paused_at = len(echo.sent)
    await eventually(lambda: _settled(app, broadcast_id), 2.0)
    stopped = len(echo.sent)
    assert stopped - paused_at <= 20  # at most the batch in flight (half a second's worth)
    await _quiet(app)
    assert len(echo.sent) == stopped and await status(app, broadcast_id) == "paused"

    await act(app, broadcast_id, "resume")
    report = await finished(app, broadcast_id)
    assert report["sent"] == 90
    assert sorted(o.recipient for o in echo.sent) == sorted(f"u{n}" for n in range(90))


async def test_cancel_leaves_the_rest_unsent(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await contacts_on(app, echo.id, 90)
    broadcast_id = await create(app, echo.id)
    await act(app, broadcast_id, "start")
    await eventually(lambda: len(echo.sent) >= 10)
    await act(app, broadcast_id, "cancel")
    await eventually(lambda: _settled(app, broadcast_id), 2.0)
    await _quiet(app)
    rows = await recipients(app, broadcast_id)
    sent = [r for r in rows if r.status == "sent"]
    assert len(sent) == len(echo.sent) < 90
    assert {r.status for r in rows} == {"sent", "cancelled"}
    assert await status(app, broadcast_id) == "cancelled"


async def test_a_platform_asking_to_wait_is_retried_not_dropped(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await say(client, app, echo, "hello", "ana")
    before = len(echo.sent)
    echo.failures = [RetryLater(0.3, "429 Too Many Requests")]
    broadcast_id = await create(app, echo.id)
    await act(app, broadcast_id, "start")
    report = await finished(app, broadcast_id)
    assert report["sent"] == 1 and [o.recipient for o in echo.sent[before:]] == ["ana"]
    async with app[DB].read() as conn:
        attempts = (await conn.execute(sa.select(broadcast_recipients.c.attempts))).scalar_one()
    assert attempts == 1


async def test_a_reply_after_the_broadcast_counts_as_a_response(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await say(client, app, echo, "hello", "ana")
    await say(client, app, echo, "hello", "ben")
    broadcast_id = await create(app, echo.id)
    await act(app, broadcast_id, "start")
    assert (await finished(app, broadcast_id))["responded"] == 0
    await say(client, app, echo, "yes please", "ana")
    async with app[DB].read() as conn:
        assert (await counts(conn, broadcast_id))["responded"] == 1


async def contacts_on(app: Application, channel_id: str, n: int) -> None:
    """`n` contacts who wrote to the channel (identities `u0`...), without conversations."""
    async with app[DB].write() as conn:
        for i in range(n):
            contact_id = (
                await conn.execute(
                    contacts.insert().values(space_id=1, name=f"c{i}").returning(contacts.c.id)
                )
            ).scalar_one()
            await conn.execute(
                identities.insert().values(
                    contact_id=contact_id, channel_id=channel_id, external_id=f"u{i}"
                )
            )


async def _settled(app: Application, broadcast_id: int) -> bool:
    """Nothing of the broadcast is being sent."""
    return (
        await count(
            app,
            broadcast_recipients,
            broadcast_recipients.c.broadcast_id == broadcast_id,
            broadcast_recipients.c.status == "sending",
        )
        == 0
    )


async def _quiet(app: Application) -> None:
    """Long enough for a runner that ignored the pause to send more (two of its polls)."""
    await asyncio.sleep(1.0)


async def test_a_scheduled_broadcast_starts_itself(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await say(client, app, echo, "hello", "ana")
    broadcast_id = await create(app, echo.id, send_at=(now() + timedelta(seconds=1)).isoformat())
    assert await status(app, broadcast_id) == "scheduled"
    app[RUNNER].notify()
    await asyncio.sleep(0.3)
    assert await status(app, broadcast_id) == "scheduled"  # not before its time
    assert (await finished(app, broadcast_id))["sent"] == 1


async def test_what_it_started_with_is_kept_and_a_later_stop_still_counts(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    for who in ("ana", "ben"):
        await say(client, app, echo, "hello", who)
    async with app[DB].write() as conn:
        shortcut_id = (
            await conn.execute(
                shortcuts.insert()
                .values(space_id=1, name="offer", text="Hi {{contact.name}}: 20% off")
                .returning(shortcuts.c.id)
            )
        ).scalar_one()
    view_id = await view(app, {"all": []}, "frozen")
    broadcast_id = await create(app, echo.id, view_id=view_id, message={"shortcut_id": shortcut_id})
    nobody = {"all": [{"field": "name", "op": "is", "value": "x"}]}
    async with app[DB].write() as conn:  # one commit: the runner sees it all at once
        await store.move(conn, 1, broadcast_id, "start")
        assert await planning._page(conn, broadcast_id, "echo", None)  # both planned, queued
        await conn.execute(views.update().values(filter=nobody))
        await conn.execute(shortcuts.delete())
        await conn.execute(  # Ben says STOP after the planning
            contacts.update()
            .where(contacts.c.id == await contact_of(app, "ben"))
            .values(unsubscribed_at=sa.func.now())
        )
    before = len(echo.sent)
    app[RUNNER].notify()
    report = await finished(app, broadcast_id)
    assert [o.recipient for o in echo.sent[before:]] == ["ana"]
    assert echo.sent[-1].parts[0].text.endswith(": 20% off")  # type: ignore[union-attr]
    assert report["sent"] == 1 and report["skipped"] == 1
    assert (await reasons(app, broadcast_id))[await contact_of(app, "ben")] == UNSUBSCRIBED
