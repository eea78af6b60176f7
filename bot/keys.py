"""Typed application keys: everything a request needs hangs off the Application."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    pass

SETTINGS = web.AppKey("settings", "Settings")
PLUGINS = web.AppKey("plugins", "Plugins")
DB = web.AppKey("db", "Database")
HTTP = web.AppKey("http", aiohttp.ClientSession)
METRICS = web.AppKey("metrics", "Metrics")
CHANNELS = web.AppKey("channels", "ChannelRegistry")
BOTS = web.AppKey("bots", "BotProvider")
QUEUE = web.AppKey("queue", "LocalWorkQueue")
SENDER = web.AppKey("sender", "Sender")
DEFAULT_SPACE = web.AppKey("default_space", int)
