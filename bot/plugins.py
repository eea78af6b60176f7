"""Discovery of channels, bots, handlers, the handover, flows and web extensions through
entry points.

`bot/` never imports a channel, integration or handler by name; a separate
package adds its own by declaring the same entry point groups. Channel classes
load on first use: a platform SDK (aiogram builds hundreds of models) costs its
import time only in processes that serve that platform.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from bot.pipeline.bots import Bot
    from bot.pipeline.handling import FlowStarter, HandlerContext, HandOver
    from bot.settings import Settings
    from channels.base import Channel

log = logging.getLogger(__name__)

Handler = Callable[[Any, "HandlerContext"], Awaitable[bool]]
BotFactory = Callable[["Settings"], "Bot"]
Extension = Callable[[web.Application], None]


class ChannelKinds(MutableMapping[str, "type[Channel]"]):
    """`kind -> Channel class`, importing each class the first time it is asked for."""

    def __init__(self, found: dict[str, EntryPoint | type[Channel]] | None = None) -> None:
        self._found: dict[str, EntryPoint | type[Channel]] = dict(found or {})

    def __getitem__(self, kind: str) -> type[Channel]:
        value = self._found[kind]
        if isinstance(value, EntryPoint):
            value = self._found[kind] = value.load()
        return value

    def __setitem__(self, kind: str, cls: type[Channel]) -> None:
        self._found[kind] = cls

    def __delitem__(self, kind: str) -> None:
        del self._found[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._found))

    def __len__(self) -> int:
        return len(self._found)


@dataclass
class Plugins:
    channels: ChannelKinds = field(default_factory=ChannelKinds)
    bots: dict[str, BotFactory] = field(default_factory=dict)
    handlers: list[Handler] = field(default_factory=list)
    extensions: list[Extension] = field(default_factory=list)
    # how handlers and flows reach each other (through the handler context), one of each
    handover: HandOver | None = None
    flows: FlowStarter | None = None

    @classmethod
    def discover(cls) -> Plugins:
        def load(group: str) -> dict[str, Any]:
            found = {ep.name: ep.load() for ep in entry_points(group=group)}
            log.debug("plugins loaded", extra={"group": group, "names": sorted(found)})
            return found

        def one(group: str) -> Any:
            """The first in name order (a package may replace the default by sorting first)."""
            found = load(group)
            return found[min(found)] if found else None

        return cls(
            channels=ChannelKinds(
                {ep.name: ep for ep in entry_points(group="chancenter.channels")}
            ),
            bots=load("chancenter.bots"),
            handlers=[h for _, h in sorted(load("chancenter.handlers").items())],
            extensions=list(load("chancenter.extensions").values()),
            handover=one("chancenter.handover"),
            flows=one("chancenter.flows"),
        )
