"""`create_app(settings)`: the composition root. Everything is built here and closed here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
import sqlalchemy as sa
from aiohttp import web

from bot.api import (
    channels as channels_api,
)
from bot.api import (
    contacts,
    conversations,
    fields,
    inbox,
    integrations,
    invitations,
    openapi,
    ops,
    org,
    people,
    reports,
    shortcuts,
    space,
    tokens,
    views,
)
from bot.api import (
    webhooks as outgoing_webhooks,
)
from bot.api.auth import auth_middleware
from bot.api.http import error_middleware, read_in_time
from bot.delivery import media
from bot.delivery.ratelimit import Limits
from bot.delivery.sender import Sender
from bot.delivery.webhooks import WebhookRelay
from bot.errors import ConfigError
from bot.keys import (
    BOTS,
    CHANNELS,
    DB,
    DEFAULT_SPACE,
    DESK,
    HTTP,
    INGESTOR,
    LOCAL_PRINCIPALS,
    METRICS,
    ON_CLOSE,
    PLUGINS,
    QUEUE,
    REDIS,
    SENDER,
    SETTINGS,
    TOPICS,
    WEBHOOKS,
)
from bot.logs import running
from bot.metrics import Metrics
from bot.pipeline import webhooks
from bot.pipeline.channels import ChannelRegistry
from bot.pipeline.ingest import Ingestor
from bot.pipeline.queue import LocalWorkQueue
from bot.pipeline.worker import Worker
from bot.plugins import Plugins
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.migrate import upgrade
from bot.storage.tables import channels
from bot.workspace.bootstrap import ensure_default_space
from bot.workspace.crypto import Vault
from bot.workspace.events import Topics
from bot.workspace.report_days import DayBook
from bot.workspace.space_bots import SpaceBots
from channels.base import ChannelContext

log = logging.getLogger(__name__)

# the REST API, a module a resource; an extension adds its own (surveys)
RESOURCES = (
    inbox,
    contacts,
    fields,
    conversations,
    people,
    space,
    org,
    invitations,
    integrations,
    channels_api,
    tokens,
    views,
    shortcuts,
    outgoing_webhooks,
    reports,
)


def create_app(settings: Settings, plugins: Plugins | None = None) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[error_middleware, read_in_time, auth_middleware],
    )
    app[SETTINGS] = settings
    app[PLUGINS] = plugins or Plugins.discover()
    app[METRICS] = Metrics()
    app[LOCAL_PRINCIPALS] = {}
    app[ON_CLOSE] = []
    app.cleanup_ctx.extend([_database, _http, _redis, _components])
    webhooks.setup(app)
    openapi.setup(app)
    for api in RESOURCES:
        api.routes.setup(app)
    ops.setup(app)
    media.setup(app)
    for extension in app[PLUGINS].extensions:  # the web chat, surveys, the Slack desk...
        extension(app)
    # the consumers start once every extension is ready, and stop before any closes
    app.cleanup_ctx.append(_background)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.is_sqlite:
        # the embedded default keeps its own schema current; PostgreSQL uses `db upgrade`
        await asyncio.to_thread(upgrade, settings.database_url)
    db = Database(settings.database_url)
    app[DB] = db
    try:
        kinds = app[PLUGINS].channels
        app[DEFAULT_SPACE] = await ensure_default_space(db, webchat="webchat" in kinds)
        yield
    finally:
        await db.close()


async def _http(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        app[HTTP] = session
        yield


async def _redis(app: web.Application) -> AsyncIterator[None]:
    """The shared Redis of a scale-out deployment (none in the embedded mode)."""
    url = app[SETTINGS].redis_url
    if url is None:
        yield
        return
    from redis.asyncio import Redis

    client = Redis.from_url(url, health_check_interval=10, socket_keepalive=True)
    app[REDIS] = client
    try:
        yield
    finally:
        await client.aclose()


async def _components(app: web.Application) -> AsyncIterator[None]:
    settings, plugins, db, metrics = app[SETTINGS], app[PLUGINS], app[DB], app[METRICS]
    ctx = ChannelContext(settings=settings, http=app[HTTP], app=app, limits=Limits(app.get(REDIS)))
    app[CHANNELS] = ChannelRegistry(db, plugins.channels, ctx)
    # import the SDKs of the channels in use now, off the event loop, not on a first webhook
    async with db.read() as conn:
        in_use = (await conn.execute(sa.select(channels.c.kind).distinct())).scalars().all()
    await asyncio.to_thread(lambda: [plugins.channels.get(kind) for kind in in_use])
    # the conversations' state is read with them only for a worker in this process
    app[TOPICS] = topics = Topics(db)
    await topics.refresh()
    ingestor = Ingestor(db, topics, hand_over=settings.works and REDIS not in app)
    app[WEBHOOKS] = relay = WebhookRelay(
        db,
        Vault(settings.signing_key()),
        metrics,
        settings.webhooks_allow_private,
        hot=ingestor.active,  # deliveries yield to the ingest
    )
    ingestor.on_events = relay.notify
    app[INGESTOR] = ingestor
    bot_kind = "dialogflow" if settings.dialogflow_project else "builtin"
    factory = plugins.bots.get(bot_kind)
    if factory is None:
        installed = ", ".join(sorted(plugins.bots)) or "none"
        raise ConfigError(f"no {bot_kind!r} bot is installed (installed: {installed})")
    app[BOTS] = SpaceBots(factory(settings), db, settings)
    sender = Sender(db, app[CHANNELS], metrics, topics=topics, on_events=relay.notify)
    worker = Worker(db, plugins.handlers, app[BOTS], metrics, app, app.get(DESK), sender=sender)
    app[SENDER] = sender
    if REDIS in app:
        from bot.pipeline.redis_queue import RedisWorkQueue

        queue = RedisWorkQueue(app[REDIS], db, worker, metrics, settings.worker_concurrency)
        # this process sends, relays and posts for its own conversations only
        sender.owned = relay.owned = queue.owned
        app[QUEUE] = queue
    else:
        app[QUEUE] = LocalWorkQueue(db, worker, metrics, settings.worker_concurrency)
    yield
    await relay.close()
    await app[INGESTOR].close()
    await worker.close()
    await sender.close()
    await app[CHANNELS].close()


async def _background(app: web.Application) -> AsyncIterator[None]:
    """The in-process consumers: the work queue, the sender, the webhook relay and the
    reports' day book (unless told not to work); extensions run their own (the flow
    clock, the Slack desk)."""
    works = app[SETTINGS].works
    book = DayBook(app[DB]).run
    consumers = (app[QUEUE].run, app[SENDER].run, app[WEBHOOKS].run, book) if works else ()
    async with running(app[TOPICS].run, *consumers):
        yield
