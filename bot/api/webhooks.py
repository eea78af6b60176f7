"""`/api/v1/webhooks`: subscriptions of other systems to the space's events, for managers.

A subscription's `whsec_` secret is answered once, when it is made (or rotated); a
receiver verifies each delivery with it (Standard Webhooks). A URL the hub will not
call (a link-local or cloud metadata address; loopback or private ones unless
`CHANCENTER_WEBHOOKS_ALLOW_PRIVATE`) is a 422 naming why, and nothing is stored.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.api.auth import PRINCIPAL
from bot.api.openapi import BEFORE, LIMIT, Routes, query_param
from bot.api.params import int_query, json_body, page_limit, path_id, space_row
from bot.api.roles import require
from bot.clock import iso, now
from bot.delivery.guard import check_target
from bot.delivery.webhooks import sealed_secret
from bot.errors import InvalidPayload, NotFound
from bot.keys import DB, SETTINGS, TOPICS, WEBHOOKS
from bot.storage.tables import webhook_deliveries, webhooks
from bot.workspace.crypto import Vault
from bot.workspace.events import EVENTS, EVERYTHING, GIVE_UP, envelope, owed

routes = Routes()
D, W = webhook_deliveries, webhooks
STATUSES = ("pending", "delivered", "failed")


def _events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - {*EVENTS, EVERYTHING})
    if unknown:
        raise ValueError(f"unknown event {unknown[0]!r}; known: *, {', '.join(EVENTS)}")
    return sorted(set(events))


class NewWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="where events are POSTed (http or https)")
    events: list[str] = Field(
        min_length=1, max_length=len(EVENTS) + 1, description="event types, or `*` for all"
    )
    description: str | None = Field(None, max_length=500)

    _known = field_validator("events")(_events)


class WebhookChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, max_length=2000)
    events: list[str] | None = Field(None, min_length=1, max_length=len(EVENTS) + 1)
    description: str | None = Field(None, max_length=500)
    enabled: bool | None = Field(
        None, description="true switches a disabled subscription back on (and forgets why)"
    )
    rotate_secret: bool = Field(False, description="a new secret, answered once")

    @field_validator("events")
    @classmethod
    def _known(cls, events: list[str] | None) -> list[str] | None:
        return None if events is None else _events(events)


def _new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _webhook_json(row: Any, counts: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "events": row.events,
        "description": row.description,
        "enabled": bool(row.enabled),
        "disabled_reason": row.disabled_reason,
        "failing_since": iso(row.failing_since),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        **({"deliveries": counts} if counts is not None else {}),
    }


def _delivery_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "webhook_id": row.webhook_id,
        "webhook_message_id": row.message_id,
        "type": row.type,
        "conversation_id": row.conversation_id,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": iso(row.next_attempt_at) if row.status == "pending" else None,
        "last_error": row.last_error,
        "created_at": iso(row.created_at),
        "finished_at": iso(row.finished_at),
        "body": row.body,
        "log": row.log,
    }


async def _check(request: web.Request, url: str) -> None:
    await check_target(url, request.app[SETTINGS].webhooks_allow_private)


def _vault(request: web.Request) -> Vault:
    return Vault(request.app[SETTINGS].signing_key())


async def _counts(conn: Any, webhook_ids: list[int]) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {i: dict.fromkeys(STATUSES, 0) for i in webhook_ids}
    rows = await conn.execute(
        sa.select(D.c.webhook_id, D.c.status, sa.func.count())
        .where(D.c.webhook_id.in_(webhook_ids))
        .group_by(D.c.webhook_id, D.c.status)
    )
    for webhook_id, status, n in rows:
        counts[webhook_id][status] = n
    return counts


async def _changed(request: web.Request) -> None:
    """This process hears the change at once (others within a second)."""
    await request.app[TOPICS].refresh()


@routes.post(
    "/api/v1/webhooks",
    "Subscribe a URL to the space's events; answers the signing secret, once",
    body=NewWebhook,
    status=201,
    errors=(400, 401, 403, 422),
)
async def create_webhook(request: web.Request) -> web.Response:
    require(request, "manager")
    new = await json_body(request, NewWebhook)
    await _check(request, new.url)
    secret = _new_secret()
    async with request.app[DB].write() as conn:
        row = (
            await conn.execute(
                W.insert()
                .values(
                    space_id=request[PRINCIPAL].space_id,
                    url=new.url,
                    events=new.events,
                    description=new.description,
                    secret=sealed_secret(_vault(request), secret),
                    created_at=now(),
                    updated_at=now(),
                )
                .returning(*W.c)
            )
        ).one()
    await _changed(request)
    return web.json_response(_webhook_json(row) | {"secret": secret}, status=201)


@routes.get("/api/v1/webhooks", "The space's subscriptions (never their secrets)")
async def list_webhooks(request: web.Request) -> web.Response:
    require(request, "manager")
    async with request.app[DB].read() as conn:
        rows = (
            await conn.execute(
                sa.select(W).where(W.c.space_id == request[PRINCIPAL].space_id).order_by(W.c.id)
            )
        ).all()
        counts = await _counts(conn, [r.id for r in rows])
    return web.json_response({"items": [_webhook_json(r, counts[r.id]) for r in rows]})


async def _webhook(request: web.Request, conn: Any) -> Any:
    return await space_row(
        conn, W, request[PRINCIPAL].space_id, path_id(request, "webhook_id"), "webhook"
    )


@routes.get(
    "/api/v1/webhooks/{webhook_id}",
    "One subscription: its events, whether it is enabled (and why not), its deliveries",
)
async def show_webhook(request: web.Request) -> web.Response:
    require(request, "manager")
    async with request.app[DB].read() as conn:
        row = await _webhook(request, conn)
        counts = await _counts(conn, [row.id])
    return web.json_response(_webhook_json(row, counts[row.id]))


@routes.patch(
    "/api/v1/webhooks/{webhook_id}",
    "Change a subscription's URL, events or description; switch it on or off; rotate its "
    "secret (answered once)",
    body=WebhookChange,
    errors=(400, 401, 403, 404, 422),
)
async def change_webhook(request: web.Request) -> web.Response:
    require(request, "manager")
    change = await json_body(request, WebhookChange)
    if change.url is not None:
        await _check(request, change.url)
    values: dict[str, Any] = change.model_dump(
        exclude_unset=True, exclude={"rotate_secret", "enabled"}
    )
    if ("url" in values and values["url"] is None) or ("events" in values and not values["events"]):
        raise InvalidPayload("url and events cannot be cleared")
    if change.enabled is not None:
        values |= {"enabled": int(change.enabled)}
        if change.enabled:
            values |= {"disabled_reason": None, "failing_since": None}
    secret = _new_secret() if change.rotate_secret else None
    if secret is not None:
        values["secret"] = sealed_secret(_vault(request), secret)
    async with request.app[DB].write() as conn:
        row = await _webhook(request, conn)
        if values:
            row = (
                await conn.execute(
                    W.update()
                    .where(W.c.id == row.id)
                    .values(**values, updated_at=now())
                    .returning(*W.c)
                )
            ).one()
    await _changed(request)
    return web.json_response(_webhook_json(row) | ({"secret": secret} if secret else {}))


@routes.delete(
    "/api/v1/webhooks/{webhook_id}", "Remove a subscription; what it is owed is not sent"
)
async def remove_webhook(request: web.Request) -> web.Response:
    require(request, "manager")
    async with request.app[DB].write() as conn:
        row = await _webhook(request, conn)
        await conn.execute(D.delete().where(D.c.webhook_id == row.id))
        await conn.execute(W.delete().where(W.c.id == row.id))
    await _changed(request)
    return web.Response(status=204)


@routes.get(
    "/api/v1/webhooks/{webhook_id}/deliveries",
    "A subscription's deliveries, newest first, each with its attempts",
    query=(
        query_param("status", "pending, delivered or failed", type="string", enum=STATUSES),
        LIMIT,
        BEFORE,
    ),
)
async def list_deliveries(request: web.Request) -> web.Response:
    require(request, "manager")
    limit = page_limit(request)
    query = sa.select(D).order_by(D.c.id.desc()).limit(limit)
    status = request.query.get("status")
    if status is not None:
        if status not in STATUSES:
            raise InvalidPayload(f"status is one of {', '.join(STATUSES)}")
        query = query.where(D.c.status == status)
    if (before := int_query(request, "before")) is not None:
        query = query.where(D.c.id < before)
    async with request.app[DB].read() as conn:
        row = await _webhook(request, conn)
        items = [
            _delivery_json(d) for d in await conn.execute(query.where(D.c.webhook_id == row.id))
        ]
    return web.json_response(
        {"items": items, "next_before": items[-1]["id"] if len(items) == limit else None}
    )


@routes.post(
    "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
    "Deliver again (a failed delivery, or a delivered one to replay), with the same "
    "webhook-id, for a day more",
    errors=(401, 403, 404),
)
async def retry_delivery(request: web.Request) -> web.Response:
    require(request, "manager")
    delivery_id = path_id(request, "delivery_id")
    at = now()
    async with request.app[DB].write() as conn:
        webhook = await _webhook(request, conn)
        row = (
            await conn.execute(
                D.update()
                .where(D.c.id == delivery_id, D.c.webhook_id == webhook.id)
                .values(
                    status="pending",
                    next_attempt_at=at,
                    give_up_at=at + GIVE_UP,
                    finished_at=None,
                )
                .returning(*D.c)
            )
        ).first()
    if row is None:
        raise NotFound(f"no delivery {delivery_id} of webhook {webhook.id}")
    request.app[WEBHOOKS].notify()
    return web.json_response(_delivery_json(row))


@routes.post(
    "/api/v1/webhooks/{webhook_id}/test",
    "POST a `webhook.test` event to the subscription now; answers the delivery and what "
    "the receiver said (not retried)",
    errors=(401, 403, 404),
)
async def test_webhook(request: web.Request) -> web.Response:
    require(request, "manager")
    at = now()
    async with request.app[DB].write() as conn:
        webhook = await _webhook(request, conn)
        body = envelope("webhook.test", at, {"webhook_id": webhook.id})
        test = owed(webhook.space_id, "webhook.test", body, at=at) | {
            "webhook_id": webhook.id,
            # tried here, once; the relay never takes it
            "next_attempt_at": at + GIVE_UP,
            "give_up_at": at,
        }
        delivery_id = (await conn.execute(D.insert().values(test).returning(D.c.id))).scalar_one()
    await request.app[WEBHOOKS].try_now(delivery_id)
    async with request.app[DB].read() as conn:
        row = (await conn.execute(sa.select(D).where(D.c.id == delivery_id))).one()
    return web.json_response(_delivery_json(row))
