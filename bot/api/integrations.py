"""`/api/v1/integrations`: the space's integrations, listed together (its Slack workspace is
connected in `integrations.slack.api`), and its own Dialogflow agent (credentials stored
encrypted)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from bot.api.auth import PRINCIPAL
from bot.api.openapi import Routes
from bot.api.params import json_body, space_items
from bot.api.roles import require
from bot.clock import iso, now
from bot.errors import InvalidPayload, NotFound
from bot.keys import BOTS, DB, SETTINGS
from bot.storage.tables import integrations
from bot.workspace.crypto import Vault


class DialogflowIntegration(BaseModel):
    project: str = Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", description="GCP project id")
    language: str | None = Field(None, pattern=r"^[a-z]{2}(-[A-Za-z]{2,4})?$")
    environment: str | None = Field(None, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")
    credentials: dict[str, Any] | None = Field(
        None, description="the service account's JSON key; kept encrypted, never shown again"
    )


routes = Routes()


def _check_key(key: dict[str, Any]) -> None:
    """Refuse a key Google would refuse, now rather than on the first message."""
    from google.oauth2 import service_account

    if key.get("type") != "service_account":
        raise InvalidPayload('credentials: a service account JSON key ("type": "service_account")')
    try:
        service_account.Credentials.from_service_account_info(key)
    except (ValueError, KeyError) as exc:
        raise InvalidPayload(f"credentials: not a usable service account key ({exc})") from None


@routes.get(
    "/api/v1/integrations",
    "The space's integrations (never their credentials), with their last error",
)
async def list_integrations(request: web.Request) -> web.Response:
    return await space_items(
        request,
        integrations,
        lambda r: {
            "kind": r.kind,
            "settings": r.settings,
            "has_credentials": bool(r.credentials),
            "error": r.error,
            "updated_at": iso(r.updated_at),
        },
        order_by=integrations.c.kind,
    )


@routes.put(
    "/api/v1/integrations/dialogflow",
    "Answer this space with its own Dialogflow agent",
    body=DialogflowIntegration,
)
async def set_dialogflow(request: web.Request) -> web.Response:
    """The space's bot becomes this Dialogflow agent (at once in this process)."""
    require(request, "manager")
    body = await json_body(request, DialogflowIntegration)
    space_id = request[PRINCIPAL].space_id
    values: dict[str, Any] = {
        "settings": body.model_dump(exclude={"credentials"}, exclude_none=True),
        "error": None,
        "updated_at": now(),
    }
    if body.credentials is not None:
        _check_key(body.credentials)
        values["credentials"] = Vault(request.app[SETTINGS].signing_key()).seal(body.credentials)
    db = request.app[DB]
    async with db.write() as conn:
        await conn.execute(
            db.insert(integrations)
            .values(space_id=space_id, kind="dialogflow", **values)
            .on_conflict_do_update(index_elements=["space_id", "kind"], set_=values)
        )
    request.app[BOTS].forget(space_id)
    return web.json_response({"kind": "dialogflow", "settings": values["settings"]})


@routes.delete("/api/v1/integrations/dialogflow", "Back to the hub's default bot")
async def remove_dialogflow(request: web.Request) -> web.Response:
    require(request, "manager")
    space_id = request[PRINCIPAL].space_id
    await remove(request, "dialogflow", "this space has no Dialogflow agent")
    request.app[BOTS].forget(space_id)
    return web.Response(status=204)


async def remove(request: web.Request, kind: str, missing: str) -> None:
    """Delete the caller's space's integration of `kind`; `NotFound(missing)` if none."""
    async with request.app[DB].write() as conn:
        gone = await conn.execute(
            integrations.delete().where(
                integrations.c.space_id == request[PRINCIPAL].space_id,
                integrations.c.kind == kind,
            )
        )
    if gone.rowcount == 0:
        raise NotFound(missing)
