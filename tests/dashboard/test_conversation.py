"""Working a conversation from the dashboard (`dashboard.conversation`, `dashboard.inbox`):
a web-chat visitor's conversation listed, its transcript escaped, a reply that reaches the
visitor, a note that does not, assign, back to the bot and close."""

from __future__ import annotations

import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import conversations, messages
from bot.workspace import contacts as contact_ops
from tests.channels.webchat.widget import Visitor, texts
from tests.conftest import eventually
from tests.dashboard.conftest import csrf_of, person, rows, space_url

HOSTILE = "<img src=x onerror=alert(1)> & <script>alert(2)</script>"


async def visitor_wants_a_human(client: TestClient, channel: str) -> Visitor:
    visitor = Visitor(client, channel)
    await visitor.connect()
    await visitor.say(HOSTILE, "m1")
    await visitor.replies(1)  # the bot does not understand
    await visitor.say("talk to a human", "m2")
    await visitor.replies(2)  # handed over, then the away reply
    return visitor


async def test_an_agent_answers_a_visitor_from_the_dashboard(
    client: TestClient, app: Application, webchat_channel: str, agent: int
) -> None:
    visitor = await visitor_wants_a_human(client, webchat_channel)
    (conversation,) = await rows(app, sa.select(conversations.c.id, conversations.c.handler))
    assert conversation.handler == "waiting"

    listed = await client.get(space_url(app, "inbox/list?handler=waiting"))
    html = await listed.text()
    assert f'data-id="{conversation.id}"' in html and "away right now" in html  # the latest
    mine = await client.get(space_url(app, "inbox/list?assignee=mine"))
    assert f'data-id="{conversation.id}"' not in await mine.text()

    url = space_url(app, f"conversations/{conversation.id}")
    page = await client.get(url)
    html = await page.text()
    assert page.status == 200
    assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt; &amp;" in html
    csrf = csrf_of(html)

    htmx = {"HX-Request": "true", "X-CSRF-Token": csrf}
    sent = await client.post(
        f"{url}/reply", data={"text": "Bea here, hello!", "key": "k1"}, headers=htmx
    )
    assert sent.status == 200 and "Bea here, hello!" in await sent.text()
    again = await client.post(
        f"{url}/reply", data={"text": "Bea here, hello!", "key": "k1"}, headers=htmx
    )
    assert again.status == 200  # the same key: a retried request, not a second message
    (reply,) = await visitor.replies(1)
    assert texts(reply) == ["Bea here, hello!"]
    (row,) = await rows(app, sa.select(conversations.c.handler, conversations.c.assignee_id))
    assert (row.handler, row.assignee_id) == ("agent", agent)  # replying claimed it

    await client.post(f"{url}/note", data={"text": "VIP, be nice"}, headers=htmx)
    noted = await rows(app, sa.select(messages.c.direction).where(messages.c.direction == "note"))
    assert len(noted) == 1

    ana = await person(app, "ana@example.com", name="Ana")
    await client.post(f"{url}/assign", data={"to": f"user:{ana}"}, headers=htmx)
    (row,) = await rows(app, sa.select(conversations.c.assignee_id))
    assert row.assignee_id == ana
    await client.post(f"{url}/bot", headers=htmx)
    (row,) = await rows(app, sa.select(conversations.c.handler))
    assert row.handler == "bot"
    closed = await client.post(f"{url}/close", headers=htmx)
    assert 'data-status="closed"' in await closed.text()

    async def one_agent_message() -> bool:
        found = await rows(
            app,
            sa.select(messages.c.id).where(
                messages.c.sender_type == "user", messages.c.direction == "out"
            ),
        )
        return len(found) == 1

    assert await eventually(one_agent_message)


async def test_changes_need_the_csrf_token_and_another_spaces_conversation_is_404(
    client: TestClient, app: Application, webchat_channel: str, agent: int
) -> None:
    await visitor_wants_a_human(client, webchat_channel)
    (conversation,) = await rows(app, sa.select(conversations.c.id))
    url = space_url(app, f"conversations/{conversation.id}")
    forged = await client.post(f"{url}/close", data={"csrf": "forged"})
    assert forged.status == 403
    (row,) = await rows(app, sa.select(conversations.c.status))
    assert row.status == "open"
    assert (await client.get(space_url(app, f"conversations/{conversation.id + 1}"))).status == 404


async def test_the_contact_panel_edits_fields_and_the_inbox_filters_by_view(
    client: TestClient, app: Application, webchat_channel: str, agent: int
) -> None:
    await visitor_wants_a_human(client, webchat_channel)
    (conversation,) = await rows(app, sa.select(conversations.c.id, conversations.c.contact_id))
    async with app[DB].write() as conn:
        await contact_ops.create_field(conn, app[DEFAULT_SPACE], "seats", "Seats", "number", [])
    url = space_url(app, f"conversations/{conversation.id}")
    html = await (await client.get(url)).text()
    assert 'id="field-seats"' in html and 'type="number"' in html
    csrf = {"X-CSRF-Token": csrf_of(html)}
    field = space_url(app, f"api/contacts/{conversation.contact_id}/fields/seats")
    assert (await client.put(field, json={"value": 12}, headers=csrf)).status == 200
    refused = await client.put(field, json={"value": "many"}, headers=csrf)
    assert refused.status in (400, 422) and "seats" in (await refused.json())["detail"]
    assert 'value="12"' in await (await client.get(url)).text()

    many = {"name": "Big", "filter": {"all": [{"field": "fields.seats", "op": "gt", "value": 10}]}}
    few = {"name": "Small", "filter": {"all": [{"field": "fields.seats", "op": "lt", "value": 10}]}}
    big = await (
        await client.post(space_url(app, "api/views"), json={**many, "shared": False}, headers=csrf)
    ).json()
    small = await (
        await client.post(space_url(app, "api/views"), json={**few, "shared": False}, headers=csrf)
    ).json()
    shown = await (await client.get(space_url(app, f"inbox/list?view={big['id']}"))).text()
    assert f'data-id="{conversation.id}"' in shown
    hidden = await (await client.get(space_url(app, f"inbox/list?view={small['id']}"))).text()
    assert f'data-id="{conversation.id}"' not in hidden


async def test_unread_counts_are_each_conversations_own(
    client: TestClient, app: Application, webchat_channel: str, agent: int
) -> None:
    ana = await visitor_wants_a_human(client, webchat_channel)
    await ana.say("still there?", "m3")  # waiting: nobody answers it
    await visitor_wants_a_human(client, webchat_channel)  # later replies, in another one

    async def badges() -> dict[str, str]:
        html = await (await client.get(space_url(app, "inbox/list"))).text()
        found = {}
        for item in html.split('<li class="conversation')[1:]:
            number = item.split('data-id="')[1].split('"')[0]
            found[number] = (
                item.split('class="badge"')[1].split(">")[1].split("<")[0]
                if 'class="badge"' in item
                else "0"
            )
        return found

    assert await eventually(lambda: _is(badges, {"1": "1", "2": "0"}))


async def _is(read: object, wanted: dict[str, str]) -> bool:
    return await read() == wanted  # type: ignore[operator]
