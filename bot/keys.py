"""Typed application keys: everything a request needs hangs off the Application."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

from bot.delivery.outbox import OutboxRelay
from bot.delivery.sender import Sender
from bot.metrics import Metrics
from bot.pipeline.bots import BotProvider
from bot.pipeline.channels import ChannelRegistry
from bot.pipeline.ingest import Ingestor
from bot.pipeline.queue import WorkQueue
from bot.plugins import Plugins
from bot.settings import Settings
from bot.storage.db import Database

SETTINGS = web.AppKey("settings", Settings)
PLUGINS = web.AppKey("plugins", Plugins)
DB = web.AppKey("db", Database)
HTTP = web.AppKey("http", aiohttp.ClientSession)
METRICS = web.AppKey("metrics", Metrics)
CHANNELS = web.AppKey("channels", ChannelRegistry)
BOTS = web.AppKey("bots", BotProvider)
INGESTOR = web.AppKey("ingestor", Ingestor)
QUEUE = web.AppKey("queue", WorkQueue)
SENDER = web.AppKey("sender", Sender)
# posts flows' webhook end actions (surveys.webhooks)
WEBHOOKS = web.AppKey("webhooks", OutboxRelay)
DEFAULT_SPACE = web.AppKey("default_space", int)
# set when the agent desk has new notices to deliver (the desk relay waits on it)
DESK_WAKE = web.AppKey("desk_wake", asyncio.Event)
# the shared Redis, when CHANCENTER_REDIS_URL is set (scale-out)
REDIS = web.AppKey("redis", Redis)
