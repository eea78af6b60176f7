"""Typed application keys: everything a request needs hangs off the Application.

The types are named for the type checker only: importing a key never imports the
runtime behind it, so a module that wants `DB` does not drag in the queue, the sender
and every channel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import aiohttp
    from redis.asyncio import Redis

    from bot.api.auth import Principal
    from bot.delivery.sender import Sender
    from bot.delivery.webhooks import WebhookRelay
    from bot.metrics import Metrics
    from bot.pipeline.bots import BotProvider
    from bot.pipeline.channels import ChannelRegistry
    from bot.pipeline.ingest import Ingestor
    from bot.pipeline.queue import WorkQueue
    from bot.plugins import Plugins
    from bot.settings import Settings
    from bot.storage.db import Database
    from bot.workspace.events import Topics

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
PLUGINS: web.AppKey[Plugins] = web.AppKey("plugins")
DB: web.AppKey[Database] = web.AppKey("db")
HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
CHANNELS: web.AppKey[ChannelRegistry] = web.AppKey("channels")
BOTS: web.AppKey[BotProvider] = web.AppKey("bots")
INGESTOR: web.AppKey[Ingestor] = web.AppKey("ingestor")
QUEUE: web.AppKey[WorkQueue] = web.AppKey("queue")
SENDER: web.AppKey[Sender] = web.AppKey("sender")
# delivers outgoing webhooks: subscriptions' events, flows' and automations' own POSTs
WEBHOOKS: web.AppKey[WebhookRelay] = web.AppKey("webhooks")
# which events each space's subscriptions hear (the hot path asks it, not the database)
TOPICS: web.AppKey[Topics] = web.AppKey("topics")
DEFAULT_SPACE = web.AppKey("default_space", int)


class AgentDesk(Protocol):
    """Where agents work (the Slack desk): which spaces it serves, and a nudge when a
    notice for it was committed."""

    def serves(self, space_id: int) -> bool: ...

    def notify(self) -> None: ...


DESK: web.AppKey[AgentDesk] = web.AppKey("desk")
# the shared Redis, when CHANCENTER_REDIS_URL is set (scale-out)
REDIS: web.AppKey[Redis] = web.AppKey("redis")
# called with (app, conversation_id) after a conversation is closed (an extension's
# follow-up: the surveys extension asks the space's satisfaction survey)
ON_CLOSE: web.AppKey[list[Callable[[web.Application, int], Awaitable[None]]]] = web.AppKey(
    "on_close"
)
# tokens minted in memory by the CLI for its one in-process call (hash -> principal)
LOCAL_PRINCIPALS: web.AppKey[dict[str, Principal]] = web.AppKey("local_principals")
