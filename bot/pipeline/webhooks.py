"""`POST /webhooks/{channel_id}`: the one route every platform's webhooks arrive on.

authenticate (raw bytes) -> parse -> one commit -> 200. The 200 is only sent once what
the request carried is durable; a platform that gets no answer redelivers, and
the redelivery is a no-op.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from bot.errors import InvalidPayload, WebhookRejected, error_response
from bot.keys import CHANNELS, INGESTOR, METRICS, QUEUE
from bot.model import Event
from bot.pipeline.ingest import Stored
from bot.pipeline.untrusted import loads
from channels.base import Channel

log = logging.getLogger(__name__)


async def receive(request: web.Request) -> web.Response:
    app = request.app
    channel = await app[CHANNELS].get(request.match_info["channel_id"])
    metrics = app[METRICS]
    raw = await request.read()
    try:
        await channel.authenticate(request.headers, raw)
    except WebhookRejected:
        metrics.webhooks.labels(kind=channel.kind, outcome="rejected").inc()
        raise
    try:
        payload = loads(raw)
    except InvalidPayload:
        metrics.webhooks.labels(kind=channel.kind, outcome="invalid").inc()
        raise
    events = channel.parse(payload)
    stored = await accept(app, channel, events)
    metrics.webhooks.labels(kind=channel.kind, outcome="stored").inc()
    reply = channel.webhook_response(payload)
    if reply is not None:
        return web.json_response(reply)
    return web.json_response(
        {"events": len(events), "stored": stored.queued, "duplicates": stored.duplicates}
    )


async def handshake(request: web.Request) -> web.Response:
    """`GET /webhooks/{channel_id}`: the platform checks the URL before sending to it."""
    channel = await request.app[CHANNELS].get(request.match_info["channel_id"])
    try:
        return web.Response(text=channel.handshake(request.query))
    except WebhookRejected as exc:
        log.info("webhook handshake refused", extra={"channel": channel.id})
        return error_response(403, str(exc))


async def accept(app: web.Application, channel: Channel, events: list[Event]) -> Stored:
    """Commit parsed events and wake the worker: the ingest step shared by every transport."""
    started = time.perf_counter()
    stored = await app[INGESTOR].store(channel.id, channel.config.space_id, events)
    if stored.queued:
        await app[QUEUE].announce(stored.conversation_ids, stored.ready)
        app[METRICS].messages.labels(direction="in").inc(stored.queued)
    app[METRICS].ingest_seconds.observe(time.perf_counter() - started)
    log.debug(
        "events stored",
        extra={"channel": channel.id, "events": len(events), "duplicates": stored.duplicates},
    )
    return stored


def setup(app: web.Application) -> None:
    app.router.add_post("/webhooks/{channel_id}", receive)
    app.router.add_get("/webhooks/{channel_id}", handshake)
