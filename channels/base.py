"""The channel adapter contract every messaging platform implements.

A channel knows nothing of routing, bots, flows or Slack: it turns a platform's
requests into unified `Event`s and unified `Outbound` messages into requests.

Example, a minimal channel::

    class EchoChannel(Channel):
        kind = "echo"
        credentials_model = NoCredentials

        def parse(self, payload):
            return [MessageReceived(external_id=payload["id"], sender=Sender(external_id="u"),
                                    parts=(TextPart(text=payload["text"]),))]

        async def send(self, outbound):
            return SentReceipt(external_id=f"echo-{outbound.message_id}")
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from bot.delivery.ratelimit import Limits
from bot.errors import ConfigError, NotFound, PermanentFailure, WebhookRejected
from bot.model import Event, Outbound, SentReceipt, TemplatePart
from bot.settings import Settings
from channels.render import Capabilities

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_PER_SECOND = 30.0  # a channel that declares no capabilities


class NoCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ChannelConfig:
    """One connected account, as stored: the hub builds a channel object from it."""

    id: str
    space_id: int
    kind: str
    name: str
    credentials: BaseModel
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Media:
    """A file fetched from the platform, for the hub's `/media/` proxy."""

    content: bytes
    content_type: str
    name: str | None = None


@dataclass(frozen=True)
class Profile:
    """What the platform tells of a contact who wrote without a name (Messenger's PSID).

    Example: `Profile(name="Peter Chang", avatar_url="https://...")`; either may be None.
    """

    name: str | None = None
    avatar_url: str | None = None


@dataclass(frozen=True)
class ChannelContext:
    """What a channel may use for I/O: settings, the shared HTTP session, the app."""

    settings: Settings
    http: aiohttp.ClientSession
    app: web.Application
    limits: Limits = field(default_factory=Limits)


class Channel(abc.ABC):
    kind: ClassVar[str]
    credentials_model: ClassVar[type[BaseModel]] = NoCredentials
    capabilities: ClassVar[Capabilities | None] = None
    group_chats: ClassVar[bool] = False  # whether the `groups` setting applies to its kind

    def __init__(self, config: ChannelConfig, ctx: ChannelContext) -> None:
        self.config = config
        self.ctx = ctx

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def per_second(self) -> float:
        """The channel's send budget a second, which its buckets keep under and the
        broadcast runner sizes its batches from: the channel's `per_second` setting (a
        Telegram bot with paid broadcasts may send more than 30), else the platform's."""
        given = self.config.settings.get("per_second")
        if given is not None:
            return float(given)
        return float(self.capabilities.per_second) if self.capabilities else DEFAULT_PER_SECOND

    @classmethod
    async def prepare(cls, given: Mapping[str, str], ctx: ChannelContext) -> tuple[BaseModel, str]:
        """Check what an admin typed (at the platform where possible) before anything is stored.

        Returns the credentials to store (with any secrets we generate) and a display name.
        Raise `ConfigError` with what to do when they are wrong.
        """
        try:
            return cls.credentials_model.model_validate(dict(given)), cls.kind
        except ValidationError as exc:
            raise ConfigError(_explain(cls.kind, exc)) from None

    def verify(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        """Raise `WebhookRejected` unless the request really comes from the platform.

        Works on the raw bytes, before any JSON, in constant time. Fails closed:
        a channel that takes no webhooks keeps this default.
        """
        raise WebhookRejected(f"{self.kind} channels take no webhooks")

    async def authenticate(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        """What the hub calls: `verify`, unless the platform's proof needs I/O (the Bot
        Framework's tokens are checked against signing keys fetched from Microsoft)."""
        self.verify(headers, raw_body)

    @classmethod
    def takes_webhooks(cls) -> bool:
        """Whether the platform posts to `/webhooks/{id}`: a channel that keeps both
        defaults refuses every webhook, so it has no URL to show."""
        return cls.verify is not Channel.verify or cls.authenticate is not Channel.authenticate

    def handshake(self, query: Mapping[str, str]) -> str:
        """Answer the platform's `GET` verification of our webhook URL (Meta's `hub.challenge`)."""
        raise WebhookRejected(f"{self.kind} channels have no verification handshake")

    def webhook_response(self, payload: Any) -> dict[str, Any] | None:
        """A body for the webhook's 200, when the platform acts on it (Telegram methods)."""
        return None

    @abc.abstractmethod
    def parse(self, payload: Any) -> list[Event]:
        """Pure and total: every event in the payload; unknown kinds yield none."""

    def render(self, outbound: Outbound) -> Any:
        """Pure: the platform request(s) for one unified message."""
        return outbound.model_dump(mode="json")

    @abc.abstractmethod
    async def send(self, outbound: Outbound) -> SentReceipt:
        """The I/O only; raise `RetryLater` or `PermanentFailure` on errors."""

    async def fetch_media(self, media_id: str) -> Media:
        """Download a contact's file from the platform with this channel's credentials."""
        raise NotFound(f"{self.kind} channels keep no media at the platform")

    async def profile(self, external_id: str) -> Profile | None:
        """The sender's name and picture, for a platform whose webhooks carry only an id.

        Optional: None here. An implementation asks the platform at most once a while per
        sender and never raises: a name is nice to have, a message must not wait on it.
        """
        return None

    async def connect(self, public_url: str) -> None:  # noqa: B027 - optional hook
        """Register our webhook at the platform (channels without webhooks have nothing to do)."""

    async def disconnect(self) -> None:  # noqa: B027 - optional hook
        """Remove our webhook from the platform."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Let go of what the channel holds open (a platform SDK's connections): the hub
        shuts down."""


def parse_each(
    channel: Channel, items: Iterable[T], parse_one: Callable[[T], list[Event]]
) -> list[Event]:
    """Parse a batch item by item: a malformed item is logged and skipped, never its neighbours."""
    events: list[Event] = []
    for item in items:
        try:
            events.extend(parse_one(item))
        # ValidationError is a ValueError; out-of-range numbers raise the last two
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError, OSError) as exc:
            log.warning(
                "malformed item skipped",
                extra={"channel": channel.id, "kind": channel.kind, "error": type(exc).__name__},
            )
    return events


def refuse_templates(outbound: Outbound) -> None:
    """For channels that cannot show a WhatsApp message template: the message fails,
    saying why, rather than reaching the contact without what it was sent for."""
    if any(isinstance(part, TemplatePart) for part in outbound.parts):
        raise PermanentFailure("message templates are WhatsApp's only")


def _explain(kind: str, exc: ValidationError) -> str:
    missing = [str(e["loc"][0]) for e in exc.errors() if e["type"] == "missing"]
    if missing:
        flags = ", ".join("--" + name.replace("_", "-") for name in missing)
        return f"a {kind} channel needs {flags}"
    err = exc.errors()[0]
    return f"{kind} channel: {'.'.join(map(str, err['loc']))}: {err['msg']}"
