"""`create_app(settings)`: the composition root. Everything is built here and closed here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp import web

from bot import (
    api,
    api_contacts,
    api_conversations,
    api_inbox,
    api_integrations,
    api_people,
    api_shortcuts,
    api_tokens,
    api_views,
    media,
    ops,
    webhooks,
)
from bot.auth import LOCAL_PRINCIPALS, auth_middleware
from bot.bootstrap import ensure_default_space
from bot.channels import ChannelRegistry
from bot.errors import ConfigError
from bot.http import error_middleware, read_in_time
from bot.ingest import Ingestor
from bot.keys import (
    BOTS,
    CHANNELS,
    DB,
    DEFAULT_SPACE,
    DESK_WAKE,
    HTTP,
    INGESTOR,
    METRICS,
    PLUGINS,
    QUEUE,
    REDIS,
    SENDER,
    SETTINGS,
    WEBHOOKS,
)
from bot.metrics import Metrics
from bot.plugins import Plugins
from bot.queue import LocalWorkQueue
from bot.ratelimit import Limits
from bot.sender import Sender
from bot.settings import Settings
from bot.space_bots import SpaceBots
from bot.storage.db import Database
from bot.storage.migrate import upgrade
from bot.storage.tables import channels
from bot.worker import Worker
from channels.base import ChannelContext
from surveys import api as surveys_api
from surveys.clock import FlowClock
from surveys.webhooks import webhook_relay

log = logging.getLogger(__name__)


def create_app(settings: Settings, plugins: Plugins | None = None) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[error_middleware, read_in_time, auth_middleware],
    )
    app[SETTINGS] = settings
    app[PLUGINS] = plugins or Plugins.discover()
    app[METRICS] = Metrics()
    app[LOCAL_PRINCIPALS] = {}
    app.cleanup_ctx.extend([_database, _http, _redis, _components, _background])
    webhooks.setup(app)
    api.setup(app)
    api_inbox.setup(app)
    api_contacts.setup(app)
    api_conversations.setup(app)
    api_people.setup(app)
    api_integrations.setup(app)
    api_tokens.setup(app)
    api_views.setup(app)
    api_shortcuts.setup(app)
    surveys_api.setup(app)
    ops.setup(app)
    media.setup(app)
    for extension in app[PLUGINS].extensions:
        extension(app)
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
    app[INGESTOR] = Ingestor(db)
    bot_kind = "dialogflow" if settings.dialogflow_project else "builtin"
    factory = plugins.bots.get(bot_kind)
    if factory is None:
        installed = ", ".join(sorted(plugins.bots)) or "none"
        raise ConfigError(f"no {bot_kind!r} bot is installed (installed: {installed})")
    app[BOTS] = SpaceBots(factory(settings), db, settings)
    sender = Sender(db, app[CHANNELS], metrics)
    desk = app.get(DESK_WAKE)  # set by an agent-desk extension (Slack) when configured
    worker = Worker(db, plugins.handlers, app[BOTS], metrics, app, desk.set if desk else None)
    app[SENDER] = sender
    app[WEBHOOKS] = webhooks = webhook_relay(db, app[HTTP])
    if REDIS in app:
        from bot.redis_queue import RedisWorkQueue

        queue = RedisWorkQueue(
            app[REDIS], db, worker, metrics, settings.worker_concurrency, on_done=sender.notify
        )
        sender.owned = webhooks.owned = queue.owned
        app[QUEUE] = queue
    else:
        app[QUEUE] = LocalWorkQueue(
            db, worker, metrics, settings.worker_concurrency, on_done=sender.notify
        )
    yield
    await app[INGESTOR].close()
    await worker.close()
    await sender.close()


async def _background(app: web.Application) -> AsyncIterator[None]:
    """The in-process consumers: the work queue, the sender, the webhook relay and the flow
    clock (unless told not to work)."""
    tasks: list[asyncio.Task[None]] = []
    if app[SETTINGS].works:
        clock = FlowClock(app[DB], app[SENDER].notify)
        consumers = (app[QUEUE].run, app[SENDER].run, app[WEBHOOKS].run, clock.run)
        tasks = [_spawn(run) for run in consumers]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _spawn(run: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
    task = asyncio.create_task(run())
    task.add_done_callback(_report_crash)
    return task


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task crashed", exc_info=task.exception())
