"""Which websockets belong to which visitor, so a reply reaches every tab they have open."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from aiohttp import web

from bot.delivery.bus import RedisBus

log = logging.getLogger(__name__)

VisitorKey = tuple[str, str]  # (channel id, visitor id)


class WebchatHub:
    """With a bus (several processes), a push is published and each process delivers to
    the sockets it holds; alone, it delivers directly."""

    def __init__(self, bus: RedisBus | None = None) -> None:
        self._sockets: dict[VisitorKey, set[web.WebSocketResponse]] = defaultdict(set)
        self.bus = bus

    def add(self, key: VisitorKey, ws: web.WebSocketResponse) -> None:
        self._sockets[key].add(ws)

    def remove(self, key: VisitorKey, ws: web.WebSocketResponse) -> None:
        sockets = self._sockets.get(key)
        if sockets is not None:
            sockets.discard(ws)
            if not sockets:
                del self._sockets[key]

    @property
    def connections(self) -> int:
        return sum(len(s) for s in self._sockets.values())

    async def push(self, channel_id: str, visitor_id: str, frame: dict[str, Any]) -> None:
        if self.bus is None:
            await self.deliver(channel_id, visitor_id, frame)
        else:
            await self.bus.publish({"channel": channel_id, "visitor": visitor_id, "frame": frame})

    async def delivered_from_bus(self, message: dict[str, Any]) -> None:
        await self.deliver(message["channel"], message["visitor"], message["frame"])

    async def deliver(self, channel_id: str, visitor_id: str, frame: dict[str, Any]) -> int:
        """Send to the visitor's sockets in this process; returns how many got it."""
        delivered = 0
        for ws in list(self._sockets.get((channel_id, visitor_id), ())):
            if ws.closed:
                continue
            try:
                await ws.send_json(frame)
                delivered += 1
            except ConnectionError:
                log.debug("socket went away during push", extra={"visitor": visitor_id})
        return delivered

    async def close_all(self) -> None:
        for sockets in list(self._sockets.values()):
            for ws in list(sockets):
                await ws.close(code=1001, message=b"server shutdown")


WEBCHAT_HUB = web.AppKey("webchat_hub", WebchatHub)
