"""HTTP plumbing shared by every route: errors become JSON with the right status."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.errors import ChanCenterError, InvalidPayload, error_response, http_status
from bot.keys import SETTINGS
from bot.settings import Settings

log = logging.getLogger(__name__)


def server_options(settings: Settings) -> dict[str, float]:
    """What `serve` gives aiohttp's server: a connection that has not sent its headers
    within `read_timeout` (aiohttp's keep-alive timer also runs from the connection's
    start) is closed, as is one idle that long between requests."""
    return {"keepalive_timeout": settings.read_timeout}


@web.middleware
async def read_in_time(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Read a body before its handler runs, within `read_timeout`: a body that trickles in
    is answered 408 instead of holding the handler. Multipart uploads stream (their
    handler reads them under the same limit)."""
    if request.body_exists and not request.content_type.startswith("multipart/"):
        try:
            async with asyncio.timeout(request.app[SETTINGS].read_timeout):
                await request.read()  # kept: the handler's read() answers from it
        except TimeoutError:
            log.info("request body too slow", extra={"path": request.path})
            seconds = request.app[SETTINGS].read_timeout
            return error_response(408, f"the body did not arrive within {seconds:g} s")
    return await handler(request)


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        if "\x00" in request.path or any("\x00" in v for v in request.query.values()):
            # never in a real URL, and PostgreSQL refuses it in any text it is compared with
            raise InvalidPayload("the URL holds a NUL character")
        return await handler(request)
    except ChanCenterError as exc:
        status = http_status(exc)
        log.info(
            "request refused",
            extra={"path": request.path, "status": status, "error": type(exc).__name__},
        )
        return error_response(status, str(exc))
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].max_body_bytes
        log.info("request refused", extra={"path": request.path, "status": 413})
        return error_response(413, f"body larger than {limit} bytes; send less")
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        if not request.path.startswith("/api/"):
            raise
        # the API answers every error alike, unknown routes included
        if isinstance(exc, web.HTTPNotFound):
            return error_response(
                404, f"no {request.path} in this API; the routes are at /api/v1/openapi.json"
            )
        allowed = ", ".join(sorted(exc.allowed_methods))
        response = error_response(405, f"{request.method} is not allowed here; use {allowed}")
        response.headers["Allow"] = allowed
        return response
