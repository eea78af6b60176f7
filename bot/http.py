"""HTTP plumbing shared by every route: errors become JSON with the right status."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from aiohttp import web

from bot.errors import ChanCenterError, http_status
from bot.keys import SETTINGS

log = logging.getLogger(__name__)


def error_response(status: int, detail: str) -> web.Response:
    """An RFC 9457 problem document: `detail` says what went wrong and what to do."""
    return web.json_response(
        {
            "type": "about:blank",
            "title": HTTPStatus(status).phrase,
            "status": status,
            "detail": detail,
        },
        status=status,
        content_type="application/problem+json",
    )


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
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
        return error_response(413, f"body larger than {limit} bytes; send less")
