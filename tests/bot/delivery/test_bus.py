"""Fan-out between processes over Redis pub/sub: what one publishes, every listener gets,
and a listener carries on after Redis restarts."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ConnectionError

from bot.delivery.bus import RedisBus
from tests.conftest import eventually
from tests.servers import Redis


async def test_every_listener_gets_what_one_publishes_even_after_a_restart(
    redis_server: Redis,
) -> None:
    got: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    clients = [AsyncRedis.from_url(redis_server.url) for _ in range(3)]
    listeners = []
    for name, client in zip(("a", "b"), clients, strict=False):

        async def deliver(message: dict[str, Any], name: str = name) -> None:
            got[name].append(message)

        listeners.append(asyncio.create_task(RedisBus(client, "cc:test").listen(deliver)))
    sender = RedisBus(clients[2], "cc:test")
    other = RedisBus(clients[2], "cc:other")
    try:

        async def subscribed() -> bool:
            try:
                return (await clients[2].pubsub_numsub("cc:test"))[0][1] == 2
            except ConnectionError:  # the pooled connection from before the restart
                return False

        await eventually(subscribed)
        await other.publish({"n": 0})  # another topic: nobody here hears it
        await sender.publish({"n": 1, "text": "olá"})
        await eventually(lambda: got["a"] and got["b"])
        assert got == {"a": [{"n": 1, "text": "olá"}], "b": [{"n": 1, "text": "olá"}]}

        redis_server.stop()
        redis_server.start()
        await eventually(subscribed, timeout=10)  # each listener subscribed again
        await sender.publish({"n": 2})
        await eventually(lambda: len(got["a"]) == 2 and len(got["b"]) == 2)
    finally:
        for task in listeners:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for client in clients:
            await client.aclose()
