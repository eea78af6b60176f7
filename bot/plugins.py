"""Discovery of channels, bots, handlers and web extensions through entry points.

`bot/` never imports a channel, integration or handler by name; a separate
package adds its own by declaring the same entry point groups.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from bot.bots import Bot
    from bot.handling import HandlerContext
    from bot.settings import Settings
    from channels.base import Channel

log = logging.getLogger(__name__)

Handler = Callable[[Any, "HandlerContext"], Awaitable[bool]]
BotFactory = Callable[["Settings"], "Bot"]
Extension = Callable[[web.Application], None]


@dataclass
class Plugins:
    channels: dict[str, type[Channel]] = field(default_factory=dict)
    bots: dict[str, BotFactory] = field(default_factory=dict)
    handlers: list[Handler] = field(default_factory=list)
    extensions: list[Extension] = field(default_factory=list)

    @classmethod
    def discover(cls) -> Plugins:
        def load(group: str) -> dict[str, Any]:
            found = {ep.name: ep.load() for ep in entry_points(group=group)}
            log.debug("plugins loaded", extra={"group": group, "names": sorted(found)})
            return found

        return cls(
            channels=load("chancenter.channels"),
            bots=load("chancenter.bots"),
            handlers=[h for _, h in sorted(load("chancenter.handlers").items())],
            extensions=list(load("chancenter.extensions").values()),
        )
