"""Messages between the hub's processes over Redis pub/sub: a reply made by a worker
reaches the web process holding the visitor's websocket."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], Awaitable[None]]


class RedisBus:
    def __init__(self, redis: Redis, topic: str) -> None:
        self._redis = redis
        self._topic = topic

    async def publish(self, message: dict[str, Any]) -> None:
        await self._redis.publish(self._topic, json.dumps(message))

    async def listen(self, deliver: Listener) -> None:
        """Deliver every message published on the topic; reconnects when Redis comes back."""
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._topic)
                    async for raw in pubsub.listen():
                        if raw.get("type") == "message":
                            await deliver(json.loads(raw["data"]))
            except (RedisError, OSError) as exc:
                log.warning("bus disconnected; reconnecting", extra={"error": str(exc)})
                await asyncio.sleep(1)
