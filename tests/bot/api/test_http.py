"""Slow clients are cut off: headers or a body that trickle in do not hold the hub."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from bot.api.http import server_options
from bot.app import create_app
from bot.plugins import Plugins
from bot.settings import Settings

LIMIT = 0.5


async def _hub(aiohttp_server: Any, settings: Settings, plugins: Plugins) -> Any:
    settings = settings.model_copy(update={"read_timeout": LIMIT})
    return await aiohttp_server(create_app(settings, plugins), **server_options(settings))


async def test_headers_that_trickle_in_are_cut_off(
    aiohttp_server: Any, settings: Settings, plugins: Plugins
) -> None:
    server = await _hub(aiohttp_server, settings, plugins)
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"POST /webhooks/x HTTP/1.1\r\nHost: hub\r\n")
    loop = asyncio.get_running_loop()
    started = loop.time()
    closed = None
    for n in range(40):  # a header line every 0.1 s, never the blank line that ends them
        if reader.at_eof():
            closed = loop.time() - started
            break
        writer.write(f"X-Slow-{n}: 1\r\n".encode())
        await asyncio.sleep(0.1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.01):
                await reader.read(1)
    writer.close()
    assert closed is not None, "the connection was still open after 4 s"
    assert closed < LIMIT + 1.0


async def test_a_body_that_trickles_in_is_408(
    aiohttp_server: Any, settings: Settings, plugins: Plugins
) -> None:
    server = await _hub(aiohttp_server, settings, plugins)
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        b"POST /api/v1/contacts HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    async with asyncio.timeout(LIMIT + 2.0):
        head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    assert head.startswith(b"HTTP/1.1 408")
