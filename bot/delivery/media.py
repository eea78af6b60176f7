"""`GET /media/{channel_id}/{media_id}`: contacts' files, fetched from the platform on demand.

The hub hands out signed paths, never the platform's URL: a Telegram file URL
carries the bot token, and Graph media needs the access token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from typing import Any

from aiohttp import web

from bot.errors import DeliveryError, NotFound, error_response
from bot.keys import CHANNELS, SETTINGS

log = logging.getLogger(__name__)


def _signature(key: bytes, channel_id: str, media_id: str) -> str:
    digest = hmac.new(key, f"media:{channel_id}:{media_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def media_path(key: bytes, channel_id: str, media_id: str) -> str:
    return f"/media/{channel_id}/{media_id}?sig={_signature(key, channel_id, media_id)}"


def with_media_urls(
    key: bytes, channel_id: str, parts: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Give parts that only have a platform reference a URL through our proxy."""
    return [
        {**p, "url": media_path(key, channel_id, p["media_id"])}
        if p.get("media_id") and not p.get("url")
        else p
        for p in parts
    ]


async def proxy(request: web.Request) -> web.StreamResponse:
    channel_id, media_id = request.match_info["channel_id"], request.match_info["media_id"]
    expected = _signature(request.app[SETTINGS].signing_key(), channel_id, media_id)
    if not hmac.compare_digest(request.query.get("sig", "").encode(), expected.encode()):
        return error_response(403, "this media link is not valid; take it from the API again")
    try:
        channel = await request.app[CHANNELS].get(channel_id)
        media = await channel.fetch_media(media_id)
    except NotFound as exc:
        return error_response(404, str(exc))
    except DeliveryError as exc:
        log.warning("media fetch failed", extra={"channel": channel_id, "error": str(exc)})
        return error_response(502, f"the platform did not hand over the file: {exc}")
    return web.Response(
        body=media.content,
        content_type=media.content_type,
        headers={
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=3600",
            "Content-Security-Policy": "default-src 'none'",
        },
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/media/{channel_id}/{media_id}", proxy)
