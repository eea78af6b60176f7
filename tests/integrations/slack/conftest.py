"""A hub with Telegram, Dialogflow and the Slack desk, every platform a local fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.app import create_app
from bot.keys import CHANNELS, DB, DEFAULT_SPACE
from bot.settings import Settings
from bot.storage.tables import space_members, users
from bot.workspace.bootstrap import user_by_email
from bot.workspace.channel_admin import add_channel
from channels.telegram import SECRET_HEADER, TelegramChannel
from tests.conftest import closed_within
from tests.fakes import dialogflow
from tests.fakes.slack import FakeSlack, action_body, command_body, event_body, signed
from tests.fakes.telegram import FakeTelegram

SIGNING_SECRET = "slack-signing-secret"
CLIENT = ("1234.5678", "slack-client-secret")  # the Slack app's OAuth client id and secret
INBOX = "CINBOX"
TOKEN = "123456:TEST-token"
CHAT = 4242


@dataclass
class Desk:
    """The hub and every fake around it, with the moves of a contact and of agents."""

    hub: TestClient
    telegram: FakeTelegram
    slack: FakeSlack
    dialogflow: dialogflow.FakeDialogflow
    channel: TelegramChannel
    updates: int = 0

    @property
    def app(self) -> Any:
        return self.hub.server.app

    async def contact_says(
        self,
        text: str | None,
        *,
        name: str = "Ana",
        caption: str | None = None,
        channel: TelegramChannel | None = None,
        chat: int = CHAT,
    ) -> None:
        """A Telegram message (a photo when `caption` is given) to `channel` (ours)."""
        self.updates += 1
        who = {"id": chat, "is_bot": False, "first_name": name, "language_code": "en"}
        message: dict[str, Any] = {
            "message_id": self.updates,
            "date": 1767225600,
            "chat": {"id": chat, "type": "private", "first_name": name},
            "from": who,
        }
        if text is not None:
            message["text"] = text
        if caption is not None:
            photo = {"file_id": "F1", "file_unique_id": "U1", "width": 9, "height": 9}
            message |= {"photo": [photo], "caption": caption}
        channel = channel or self.channel
        secret = channel.config.credentials.secret_token.get_secret_value()  # type: ignore[attr-defined]
        resp = await self.hub.post(
            f"/webhooks/{channel.id}",
            json={"update_id": 1000 + self.updates, "message": message},
            headers={SECRET_HEADER: secret},
        )
        assert resp.status == 200, await resp.text()

    def telegram_texts(self) -> list[str]:
        return [c.params["text"] for c in self.telegram.sent("sendMessage")]

    async def slack_post(
        self,
        body: str | bytes,
        content_type: str,
        retry: int | None = None,
        secret: str = SIGNING_SECRET,
    ) -> Any:
        return await self.hub.post(
            "/slack/events", data=body, headers=signed(secret, body, content_type, retry)
        )

    async def click(self, action: str, conversation_id: int, user: str, **extra: Any) -> Any:
        body = action_body(action, f"conversation:{conversation_id}", user, INBOX, **extra)
        resp = await self.slack_post(body, "application/x-www-form-urlencoded")
        assert resp.status == 200, await resp.text()
        return resp

    async def reply_in_thread(
        self, thread_ts: str, user: str, text: str, ts: str, retry: int | None = None
    ) -> Any:
        event = {
            "type": "message",
            "channel": INBOX,
            "user": user,
            "text": text,
            "ts": ts,
            "thread_ts": thread_ts,
            "channel_type": "channel",
        }
        resp = await self.slack_post(event_body(event), "application/json", retry)
        assert resp.status == 200, await resp.text()
        return resp

    async def command(self, text: str, user: str) -> str:
        resp = await self.slack_post(
            command_body(text, user, INBOX), "application/x-www-form-urlencoded"
        )
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        return str(body.get("text", ""))

    async def add_agent(
        self,
        slack_id: str,
        name: str,
        email: str,
        availability: str = "away",
        space_id: int | None = None,
    ) -> int:
        """A user of the space (the default one); Slack knows them by the same email."""
        self.slack.add_user(slack_id, name, email)
        async with self.app[DB].write() as conn:
            user_id = await user_by_email(conn, name, email)
            await conn.execute(
                users.update().where(users.c.id == user_id).values(availability=availability)
            )
            await conn.execute(
                space_members.insert().values(
                    space_id=space_id or self.app[DEFAULT_SPACE], user_id=user_id, role="agent"
                )
            )
        return user_id


async def _serve(app: Any) -> tuple[TestServer, str]:
    server = TestServer(app)
    await server.start_server()
    return server, str(server.make_url("")).rstrip("/")


@asynccontextmanager
async def open_desk(aiohttp_client: Any, settings: Settings, **more: Any) -> AsyncIterator[Desk]:
    """The desk's hub; `more` settings for what a test adds (another platform's fake)."""
    telegram, slack = FakeTelegram(), FakeSlack()
    telegram_server, telegram.url = await _serve(telegram.app())
    slack_server, slack_url = await _serve(slack.app)
    async with dialogflow.serve() as agent:
        app = create_app(
            settings.model_copy(
                update={
                    "telegram_api_base": telegram.url,
                    "public_url": "https://hub.example.com",
                    "slack_api_base": f"{slack_url}/api/",
                    "slack_bot_token": SecretStr("xoxb-test"),
                    "slack_signing_secret": SecretStr(SIGNING_SECRET),
                    "slack_inbox_channel": INBOX,
                    "slack_client_id": CLIENT[0],
                    "slack_client_secret": SecretStr(CLIENT[1]),
                    "dialogflow_project": "acme-agent",
                    "dialogflow_endpoint": f"127.0.0.1:{agent.port}",
                    **more,
                }
            )
        )
        hub = await aiohttp_client(app)
        info = await add_channel(app, app[DEFAULT_SPACE], "telegram", {"token": TOKEN})
        channel = await app[CHANNELS].get(info.id)
        assert isinstance(channel, TelegramChannel)
        yield Desk(hub, telegram, slack, agent, channel)
        await closed_within(hub, 15)
    await telegram_server.close()
    await slack_server.close()


@pytest.fixture
async def desk(aiohttp_client: Any, settings: Settings) -> AsyncIterator[Desk]:
    async with open_desk(aiohttp_client, settings) as opened:
        yield opened
