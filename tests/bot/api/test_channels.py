# ruff: noqa: F811 - the fake platforms' fixtures are imported by name, then requested
"""`/api/v1/channels` against the fake Telegram and Graph APIs: connect (checked at the
platform, 422 and nothing stored when refused), list with health, change at once, remove."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.api.auth import create_token
from bot.api.channels import NewChannel
from bot.app import create_app
from bot.cli.args import CHANNEL_FLAGS
from bot.keys import CHANNELS, DB, DEFAULT_SPACE
from bot.settings import Settings
from bot.storage.tables import channels, messages
from channels.telegram import SECRET_HEADER, TelegramChannel
from tests.channels.conftest import graph  # noqa: F401 - the fake Graph API fixture
from tests.channels.test_telegram import TOKEN, fake, message, update  # noqa: F401 - fixture
from tests.conftest import closed_within, count, eventually
from tests.fakes.graph import FakeGraph
from tests.fakes.telegram import FakeTelegram

PUBLIC = "https://hub.example.com"


@pytest.fixture
async def hub(aiohttp_client: Any, settings: Settings, fake: FakeTelegram, graph: FakeGraph) -> Any:
    app = create_app(
        settings.model_copy(
            update={
                "telegram_api_base": fake.url,
                "graph_api_base": graph.url,
                "public_url": PUBLIC,
            }
        )
    )
    client = await aiohttp_client(app)
    yield client
    await closed_within(client, 15)


@pytest.fixture
async def roles(hub: TestClient) -> dict[str, dict[str, str]]:
    app = hub.server.app
    async with app[DB].write() as conn:
        made = {
            role: await create_token(conn, app[DEFAULT_SPACE], None, role, role)
            for role in ("agent", "manager")
        }
    return {role: {"Authorization": f"Bearer {token}"} for role, token in made.items()}


async def connect(hub: TestClient, headers: dict[str, str], **body: Any) -> Any:
    resp = await hub.post("/api/v1/channels", json=body, headers=headers)
    return resp.status, await resp.json()


async def stored(app: Application) -> int:
    return await count(app, channels)


async def say(hub: TestClient, channel_id: str, n: int, chat: dict[str, Any], text: str) -> None:
    found = await hub.server.app[CHANNELS].get(channel_id)
    assert isinstance(found, TelegramChannel)
    secret = found.config.credentials.secret_token.get_secret_value()  # type: ignore[attr-defined]
    resp = await hub.post(
        f"/webhooks/{channel_id}",
        data=json.dumps(update(n, message=message(n, chat=chat, text=text))),
        headers={SECRET_HEADER: secret, "Content-Type": "application/json"},
    )
    assert resp.status == 200


async def test_connect_list_change_and_remove_a_telegram_bot(
    hub: TestClient, fake: FakeTelegram, roles: dict[str, dict[str, str]]
) -> None:
    manager = roles["manager"]
    status, made = await connect(hub, manager, kind="telegram", token=TOKEN)
    assert status == 201, made
    channel_id = made["id"]
    assert made == {
        "id": channel_id,
        "kind": "telegram",
        "name": "@acme_bot",
        "webhook_url": f"{PUBLIC}/webhooks/{channel_id}",
        "settings": {},
        "health": {"last_received_at": None, "last_send_error": None},
    }
    assert [c.method for c in fake.calls[:2]] == ["getMe", "setWebhook"]
    assert fake.webhooks[TOKEN]["url"] == made["webhook_url"]

    # it takes webhooks at once, and its health says when the last one came
    await say(hub, channel_id, 1, {"id": 4242, "type": "private"}, "hello")
    one = await (await hub.get(f"/api/v1/channels/{channel_id}", headers=manager)).json()
    assert one["health"]["last_received_at"] is not None
    listing = await hub.get("/api/v1/channels", headers=manager)
    text = await listing.text()
    assert TOKEN not in text and "secret" not in text  # never credentials
    items = {c["kind"]: c for c in json.loads(text)["items"]}
    assert sorted(items) == ["telegram", "webchat"]
    assert items["telegram"] == one

    change = {"name": "Support bot", "settings": {"per_second": 50, "groups": True}}
    resp = await hub.patch(f"/api/v1/channels/{channel_id}", json=change, headers=manager)
    assert resp.status == 200, await resp.text()
    changed = await resp.json()
    assert changed["name"] == "Support bot"
    assert changed["settings"] == {"per_second": 50, "groups": True}
    # the hub's channel object is rebuilt with them: its send budget is the new one
    live = await hub.server.app[CHANNELS].get(channel_id)
    assert live.per_second == 50 and live.config.name == "Support bot"
    back = {"settings": {"per_second": None}}
    resp = await hub.patch(f"/api/v1/channels/{channel_id}", json=back, headers=manager)
    assert (await resp.json())["settings"] == {"groups": True}
    assert (await hub.server.app[CHANNELS].get(channel_id)).per_second == 30

    resp = await hub.delete(f"/api/v1/channels/{channel_id}", headers=manager)
    assert resp.status == 204
    assert fake.calls[-1].method == "deleteWebhook" and TOKEN not in fake.webhooks
    gone = await hub.get(f"/api/v1/channels/{channel_id}", headers=manager)
    assert gone.status == 404
    again = await hub.delete(f"/api/v1/channels/{channel_id}", headers=manager)
    assert again.status == 404


async def test_refused_credentials_are_422_with_the_platforms_reason_and_nothing_stored(
    hub: TestClient, fake: FakeTelegram, roles: dict[str, dict[str, str]]
) -> None:
    manager, app = roles["manager"], hub.server.app
    before = await stored(app)
    refusals = [
        ({"kind": "telegram", "token": "999:WRONG"}, "BotFather"),
        ({"kind": "telegram", "token": "not a token"}, "123456:ABC-DEF"),
        ({"kind": "telegram"}, "needs --token"),
        ({"kind": "fax", "token": TOKEN}, "choose one of"),
        (
            {
                "kind": "messenger",
                "page_id": "1001",
                "page_token": "STOLEN",
                "app_secret": "s",
                "verify_token": "v",
            },
            "Meta refused (190",
        ),
        ({"kind": "whatsapp", "app_secret": "s"}, "needs --verify-token"),
    ]
    for body, reason in refusals:
        status, problem = await connect(hub, manager, **body)
        assert status == 422, body
        assert reason in problem["detail"], problem
        assert "STOLEN" not in problem["detail"]
    # Telegram takes the token but refuses the webhook: the channel is not kept either
    fake.fail("setWebhook", 400, "Bad Request: bad webhook: HTTPS url must be provided")
    status, problem = await connect(hub, manager, kind="telegram", token=TOKEN)
    assert status == 422 and "HTTPS url must be provided" in problem["detail"]
    assert await stored(app) == before
    # a misspelt field is a 400 naming it
    status, problem = await connect(hub, manager, kind="telegram", tokn=TOKEN)
    assert status == 400 and problem["detail"].startswith("tokn: unknown field")


async def test_meta_channels_are_connected_with_their_checked_name(
    hub: TestClient, graph: FakeGraph, roles: dict[str, dict[str, str]]
) -> None:
    body = {"page_id": "1001", "page_token": "PAGE-TOKEN", "app_secret": "s", "verify_token": "v"}
    status, made = await connect(hub, roles["manager"], kind="messenger", **body)
    assert status == 201, made
    assert made["name"] == "Acme Support" and made["webhook_url"].endswith(made["id"])
    assert any(path.endswith("/me") for path, _ in graph.reads)
    status, made = await connect(hub, roles["manager"], kind="webchat")
    assert status == 201 and made["webhook_url"] is None  # the widget takes no webhooks


async def test_settings_are_checked_against_the_channel(
    hub: TestClient, roles: dict[str, dict[str, str]]
) -> None:
    manager = roles["manager"]
    listed = await (await hub.get("/api/v1/channels", headers=manager)).json()
    (webchat,) = [c["id"] for c in listed["items"] if c["kind"] == "webchat"]
    _, bot = await connect(hub, manager, kind="telegram", token=TOKEN)
    url = f"/api/v1/channels/{bot['id']}"
    cases = [
        ({"settings": {"per_secnd": 5}}, 422, "unknown setting; known: per_second, groups"),
        ({"settings": {"per_second": 0}}, 422, "settings.per_second"),
        ({"settings": {"per_second": 5000}}, 422, "settings.per_second"),
        ({"settings": {"groups": "maybe"}}, 422, "settings.groups"),
        ({"name": "   "}, 422, "name"),
        ({"name": ""}, 400, "name"),
        ({"colour": "red"}, 400, "colour: unknown field"),
    ]
    for body, status, detail in cases:
        resp = await hub.patch(url, json=body, headers=manager)
        assert resp.status == status, (body, await resp.text())
        assert detail in (await resp.json())["detail"], body
    on_webchat = await hub.patch(
        f"/api/v1/channels/{webchat}", json={"settings": {"groups": True}}, headers=manager
    )
    assert on_webchat.status == 422
    assert "webchat channels have no group chats" in (await on_webchat.json())["detail"]
    unchanged = await (await hub.get(url, headers=manager)).json()
    assert unchanged["settings"] == {} and unchanged["name"] == "@acme_bot"
    missing = await hub.patch("/api/v1/channels/nope", json={"name": "x"}, headers=manager)
    assert missing.status == 404


async def test_only_managers_manage_channels(
    hub: TestClient, fake: FakeTelegram, roles: dict[str, dict[str, str]]
) -> None:
    agent = roles["agent"]
    listed = await (await hub.get("/api/v1/channels", headers=roles["manager"])).json()
    channel_id = listed["items"][0]["id"]
    for method, path, body in (
        ("POST", "/api/v1/channels", {"kind": "telegram", "token": TOKEN}),
        ("GET", "/api/v1/channels", None),
        ("GET", f"/api/v1/channels/{channel_id}", None),
        ("PATCH", f"/api/v1/channels/{channel_id}", {"name": "x"}),
        ("DELETE", f"/api/v1/channels/{channel_id}", None),
    ):
        resp = await hub.request(method, path, json=body, headers=agent)
        assert resp.status == 403, (method, path)
    assert fake.calls == [] and await stored(hub.server.app) == 1


async def test_health_shows_the_last_send_error(
    hub: TestClient, fake: FakeTelegram, roles: dict[str, dict[str, str]]
) -> None:
    _, made = await connect(hub, roles["manager"], kind="telegram", token=TOKEN)
    fake.fail("sendMessage", 403, "Forbidden: bot was blocked by the user")
    await say(hub, made["id"], 1, {"id": 4242, "type": "private"}, "hello")

    async def failed() -> Any:
        one = await hub.get(f"/api/v1/channels/{made['id']}", headers=roles["manager"])
        return (await one.json())["health"]["last_send_error"]

    error = await eventually(failed)
    assert "blocked the bot" in error["error"] and error["at"] is not None
    async with hub.server.app[DB].read() as conn:
        newest = (
            await conn.execute(
                sa.select(sa.func.max(messages.c.id)).where(messages.c.status == "failed")
            )
        ).scalar_one()
    assert error["message_id"] == newest


def test_the_api_takes_the_credentials_channels_add_takes() -> None:
    flags = {flag[2:].replace("-", "_") for flag in CHANNEL_FLAGS}
    assert set(NewChannel.model_fields) == {"kind", *flags}
