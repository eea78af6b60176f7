"""Settings in the dashboard (`dashboard.settings`): for managers only, every section shown,
and changes made through the API as the manager (a channel, a field, a shortcut, a token,
a broadcast started and followed to its end)."""

from __future__ import annotations

import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.storage.tables import api_tokens, broadcasts
from tests.channels.webchat.widget import Visitor
from tests.conftest import eventually
from tests.dashboard.conftest import csrf_of, person, rows, sign_in, space_url


async def test_an_agent_sees_no_settings(client: TestClient, app: Application, agent: int) -> None:
    assert (await client.get(space_url(app, "settings"))).status == 403
    assert (await client.get(space_url(app, "settings/tokens"))).status == 403
    inbox = await (await client.get(space_url(app, "inbox"))).text()
    assert "/settings" not in inbox


async def test_a_manager_sets_up_the_space(
    client: TestClient, app: Application, webchat_channel: str
) -> None:
    await person(app, "max@example.com", role="manager", name="Max")
    await sign_in(client, "max@example.com")
    page = await client.get(space_url(app, "settings"))
    html = await page.text()
    assert page.status == 200 and "<title>Settings" in html
    for title in ("Channels", "People and teams", "API tokens", "Broadcasts", "Shortcuts"):
        assert f">{title}</h2>" in html
    csrf = {"X-CSRF-Token": csrf_of(html)}

    async def api(method: str, path: str, body: object = None) -> object:
        resp = await client.request(method, space_url(app, f"api/{path}"), json=body, headers=csrf)
        assert resp.status < 300, await resp.text()
        return await resp.json() if resp.content_type == "application/json" else None

    await api(
        "POST",
        "fields",
        {"key": "plan", "label": "Plan", "type": "choice", "options": ["free", "pro"]},
    )
    await api("POST", "shortcuts", {"name": "hi", "text": "Hello <there>"})
    made = await api("POST", "tokens", {"name": "ci", "role": "agent"})
    assert made["token"].startswith("cc_")  # type: ignore[index]
    fields = await (await client.get(space_url(app, "settings/fields"))).text()
    assert "<code>plan</code>" in fields
    shortcuts = await (await client.get(space_url(app, "settings/shortcuts"))).text()
    assert "Hello &lt;there&gt;" in shortcuts
    tokens = await (await client.get(space_url(app, "settings/tokens"))).text()
    assert "ci <small>(agent" in tokens
    assert len(await rows(app, sa.select(api_tokens.c.id))) == 1

    visitor = Visitor(client, webchat_channel)
    await visitor.connect()
    await visitor.say("hi", "m1")
    await visitor.replies(1)
    view = await api("POST", "views", {"name": "Everyone", "filter": {"all": []}})
    draft = await api(
        "POST",
        "broadcasts",
        {
            "name": "News",
            "channel_id": webchat_channel,
            "view_id": view["id"],
            "message": {"text": "Big news"},
        },  # type: ignore[index]
    )
    await api("POST", f"broadcasts/{draft['id']}/start")  # type: ignore[index]

    async def finished() -> bool:
        found = await rows(app, sa.select(broadcasts.c.status))
        return found[0].status == "completed"

    await eventually(finished, timeout=10)
    listed = await (await client.get(space_url(app, "settings/broadcasts"))).text()
    assert "completed" in listed and "1 sent" in listed and "of 1" in listed
    (news,) = await visitor.replies(1)
    assert news["parts"][0]["text"] == "Big news"
