"""The Bot Framework (Azure Bot Service): Microsoft Teams, and Web Chat, Direct Line and
the other channels of an Azure Bot, through Microsoft's Bot Framework SDK.

An admin registers an Azure Bot (its Microsoft app id and password, and the tenant of a
single-tenant app), adds the channel (`chancenter channels add botframework --app-id ...
--app-password ...`) and pastes the URL it prints into the bot's messaging endpoint.

In: each request carries a token the SDK checks (`channels.botframework_auth`), then
its activity becomes events (`channels.botframework_activities`); a picture pasted into
Teams is fetched for agents with the app's token, through the hub's `/media/` proxy.
Out: every message is sent proactively, from the conversation reference stored with the
contact, by the SDK's connector client with the app's token, within Teams' limits a
conversation (7 a second, 60 in 30 seconds, 1,800 an hour) and the app's (the
`per_second` setting).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

import requests
from botbuilder.schema import Activity
from botframework.connector.aio import ConnectorClient
from botframework.connector.models import ErrorResponseException
from pydantic import BaseModel, Field, SecretStr
from urllib3.util.retry import Retry

from bot.delivery.ratelimit import paced, per_window
from bot.errors import (
    ConfigError,
    InvalidPayload,
    NotFound,
    PermanentFailure,
    RecipientBlocked,
    RetryLater,
    Unavailable,
)
from bot.model import Event, Outbound, SentReceipt
from bot.pipeline.untrusted import loads
from channels.base import Channel, ChannelContext, Media, parse_each, refuse_templates
from channels.botframework_activities import (
    CAPABILITIES,
    events_of,
    message_key,
    reference_of,
    render,
    url_of,
)
from channels.botframework_auth import AppCredentials, Gate, fetch_token

log = logging.getLogger(__name__)

TIMEOUT = 20  # seconds for one request to the connector
# Teams' limits for one bot in one conversation ("Rate limiting for bots", Microsoft Learn)
PER_SECOND, PER_30_SECONDS, PER_HOUR = 7, 60, 1800


class BotFrameworkCredentials(BaseModel):
    app_id: str = Field(min_length=1, max_length=64)
    app_password: SecretStr = Field(min_length=1)
    tenant_id: str | None = Field(None, max_length=64)  # a single-tenant app's


class BotFrameworkChannel(Channel):
    kind = "botframework"
    credentials_model = BotFrameworkCredentials
    capabilities = CAPABILITIES

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        given: BotFrameworkCredentials = self.config.credentials  # type: ignore[assignment]
        password = given.app_password.get_secret_value()
        settings = self.ctx.settings
        self.app_id = given.app_id
        self._gate = Gate(
            given.app_id,
            password,
            given.tenant_id,
            str(settings.botframework_openid_url),
            str(settings.botframework_login_url),
        )
        self._credentials = credentials_of(given, str(settings.botframework_login_url))
        self._token_lock = asyncio.Lock()
        self._clients: dict[str, ConnectorClient] = {}  # by service URL
        name = f"botframework:{self.id}"
        limits = self.ctx.limits
        self._app = limits.bucket(name, *paced(self.per_second))
        self._second = limits.bucket(f"{name}:second", *per_window(PER_SECOND, 1.0))
        self._thread = limits.bucket(f"{name}:thread", *per_window(PER_30_SECONDS, 30.0))
        self._hour = limits.bucket(f"{name}:hour", *per_window(PER_HOUR, 3600.0))

    @classmethod
    async def prepare(cls, given: Mapping[str, str], ctx: ChannelContext) -> tuple[BaseModel, str]:
        """The app id and password are tried at the login endpoint: Microsoft's refusal is
        shown before anything is stored."""
        credentials, _ = await super().prepare(given, ctx)
        assert isinstance(credentials, BotFrameworkCredentials)
        login = credentials_of(credentials, str(ctx.settings.botframework_login_url))
        try:
            await fetch_token(login, asyncio.Lock())
        except Unavailable as exc:
            raise ConfigError(f"{exc}: try again in a while") from None
        return credentials, f"Bot Framework app {credentials.app_id}"

    # --- in ---------------------------------------------------------------------

    async def authenticate(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        try:
            activity = Activity().deserialize(loads(raw_body))
        except (InvalidPayload, AttributeError, TypeError, ValueError):
            activity = Activity()  # the token is checked first: a stranger learns nothing
        await self._gate.check(activity, headers.get("Authorization"))

    def parse(self, payload: Any) -> list[Event]:
        items = payload if isinstance(payload, list) else [payload]
        return parse_each(self, items, lambda item: events_of(Activity().deserialize(item)))

    # --- out --------------------------------------------------------------------

    async def send(self, outbound: Outbound) -> SentReceipt:
        refuse_templates(outbound)
        if not outbound.address:
            raise PermanentFailure("the contact has no Bot Framework conversation to write in")
        reference = reference_of(outbound.address)
        conversation = reference.conversation.id
        try:
            await fetch_token(self._credentials, self._token_lock)
        except ConfigError as exc:
            raise PermanentFailure(str(exc)) from None
        except Unavailable as exc:
            raise RetryLater(30.0, str(exc)) from None
        client = self._client(reference.service_url)
        sent = None
        for activity in render(outbound, reference):
            # the conversation's limits first: a token of the app's is not held meanwhile
            for bucket in (self._hour, self._thread, self._second):
                await bucket.acquire(conversation)
            await self._app.acquire()
            try:
                sent = await client.conversations.send_to_conversation(conversation, activity)
            except ErrorResponseException as exc:
                raise _delivery_error(exc) from None
            except requests.RequestException as exc:
                raise RetryLater(10.0, f"the Bot Framework is unreachable: {exc}") from None
        return SentReceipt(external_id=message_key(conversation, sent.id) if sent else None)

    async def fetch_media(self, media_id: str) -> Media:
        """A picture kept by Microsoft (`needs_token` chose its URL), with the app's token."""
        url = url_of(media_id)
        try:
            token = await fetch_token(self._credentials, self._token_lock)
        except ConfigError as exc:
            raise PermanentFailure(str(exc)) from None
        except Unavailable as exc:
            raise RetryLater(30.0, str(exc)) from None
        limit = self.ctx.settings.max_upload_bytes
        return await asyncio.to_thread(_download, url, token, limit)

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.__aexit__(None, None, None)  # its requests session, pooled sockets
        self._credentials.close()

    def _client(self, service_url: str) -> ConnectorClient:
        """One connector client (and its pooled connections) a service URL."""
        client = self._clients.get(service_url)
        if client is None:
            client = ConnectorClient(self._credentials, base_url=service_url)
            # retried by the outbox, durably and honouring Retry-After, not inside a send
            client.config.retry_policy.policy = Retry(total=0, raise_on_status=False)
            client.config.connection.timeout = TIMEOUT
            self._clients[service_url] = client
        return client


def _download(url: str, token: str, limit: int) -> Media:
    """Blocking (`requests`, which trusts the same certificates as the SDK's calls)."""
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with requests.get(url, headers=headers, timeout=TIMEOUT, stream=True) as resp:
            if resp.status_code == 404:
                raise NotFound("Microsoft no longer keeps this file")
            if resp.status_code != 200:
                raise PermanentFailure(f"Microsoft refused the file ({resp.status_code})")
            body = resp.raw.read(limit + 1, decode_content=True)
            kind = resp.headers.get("Content-Type", "application/octet-stream")
    except requests.RequestException as exc:
        raise RetryLater(10.0, f"Microsoft's file store is unreachable: {exc}") from None
    if len(body) > limit:
        raise PermanentFailure(f"the file is larger than {limit:,} bytes")
    return Media(body, kind)


def credentials_of(given: BotFrameworkCredentials, login_url: str) -> AppCredentials:
    return AppCredentials(
        given.app_id, given.app_password.get_secret_value(), given.tenant_id, login_url
    )


def _delivery_error(exc: ErrorResponseException) -> Exception:
    """The one place the connector's answers become retry-or-give-up decisions."""
    response = exc.response
    status = getattr(response, "status_code", 0)
    after = _retry_after(getattr(response, "headers", {}) or {})
    reason = _reason(exc, status)
    if status == 429:
        return RetryLater(after or 5.0, f"the Bot Framework's rate limit: {reason}")
    if status >= 500 or status == 0:
        return RetryLater(after or 10.0, f"the Bot Framework is unavailable: {reason}")
    if status == 403 and "roster" in reason.lower():
        return RecipientBlocked(f"the contact removed the bot ({reason})")
    if status in (401, 403):
        return PermanentFailure(f"the Bot Framework refused the bot's token ({status}): {reason}")
    return PermanentFailure(f"the Bot Framework refused the message ({status}): {reason}")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return max(float(headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return None


def _reason(exc: ErrorResponseException, status: int) -> str:
    """The connector's `{"error": {"code", "message"}}`, else the bare status."""
    error = getattr(exc.error, "error", None)
    if error is not None and (error.message or error.code):
        return f"{error.code}: {error.message}" if error.code else str(error.message)
    text = getattr(exc.response, "text", "")
    body = text() if callable(text) else text
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}"
