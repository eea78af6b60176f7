"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.keys import DB, METRICS
from bot.storage.tables import desk_outbox, outbox, webhook_deliveries, webhook_events, work_items

log = logging.getLogger(__name__)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[DB].ping()
    except Exception as exc:
        log.warning("database unreachable", extra={"error": type(exc).__name__})
        return web.json_response(
            {"status": "unavailable", "database": f"unreachable: {type(exc).__name__}"}, status=503
        )
    return web.json_response({"status": "ok", "database": "ok"})


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[METRICS]
    async with request.app[DB].read() as conn:
        work = (
            await conn.execute(sa.select(sa.func.count()).where(work_items.c.status == "pending"))
        ).scalar_one()
        dead = (
            await conn.execute(sa.select(sa.func.count()).where(work_items.c.status == "dead"))
        ).scalar_one()
        owed = {
            name: (await conn.execute(query)).scalar_one()
            for name, query in (
                ("outbox", sa.select(sa.func.count()).select_from(outbox)),
                # Slack notices not yet taken
                ("desk", sa.select(sa.func.count()).select_from(desk_outbox)),
                # outgoing webhooks owed: events not yet fanned out, deliveries not yet taken
                ("webhook_events", sa.select(sa.func.count()).select_from(webhook_events)),
                (
                    "webhooks",
                    sa.select(sa.func.count()).where(webhook_deliveries.c.status == "pending"),
                ),
            )
        }
    registry.queue_depth.labels(queue="work").set(work)
    registry.queue_depth.labels(queue="dead").set(dead)
    for name, rows in owed.items():
        registry.queue_depth.labels(queue=name).set(rows)
    return web.Response(body=registry.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
