"""Which websockets belong to which visitor, so a reply reaches every tab they have open."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

VisitorKey = tuple[str, str]  # (channel id, visitor id)


class WebchatHub:
    def __init__(self) -> None:
        self._sockets: dict[VisitorKey, set[web.WebSocketResponse]] = defaultdict(set)

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

    async def push(self, channel_id: str, visitor_id: str, frame: dict[str, Any]) -> int:
        """Send to the visitor's open sockets; returns how many got it."""
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
