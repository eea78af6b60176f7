"""`/api/v1/channels`: the space's messaging channels, for managers.

The same implementation as `chancenter channels ...` and `/channel ...` in a chat
(`bot.workspace.channel_admin`): credentials are checked at the platform before
anything is stored (a refusal is a 422 with the platform's reason), kept encrypted and
never answered; a channel shows its webhook URL, settings and health.
"""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr, WithJsonSchema

from bot.api.auth import PRINCIPAL
from bot.api.openapi import REF, Routes
from bot.api.params import json_body
from bot.api.roles import require
from bot.errors import ConfigError, Unprocessable
from bot.workspace import channel_admin
from bot.workspace.channel_admin import ChannelSettings

routes = Routes()
Secret = Annotated[SecretStr | None, Field(None, max_length=1000)]


class NewChannel(BaseModel):
    """A channel to connect: its kind and the credentials that kind needs (the flags of
    `chancenter channels add`). Example: `{"kind": "telegram", "token": "123456:ABC-DEF"}`."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(
        min_length=1, max_length=32, description="telegram, messenger, whatsapp, webchat, ..."
    )
    token: Secret = Field(None, description="telegram: the bot token from @BotFather")
    page_id: str | None = Field(None, max_length=64, description="messenger: the page's id")
    page_token: Secret = Field(None, description="messenger: the page access token")
    phone_number_id: str | None = Field(
        None, max_length=64, description="whatsapp: the phone number's id"
    )
    access_token: Secret = Field(None, description="whatsapp: a system-user access token")
    app_secret: Secret = Field(
        None, description="messenger/whatsapp: the Meta app secret (signs webhooks)"
    )
    verify_token: Secret = Field(
        None, description="messenger/whatsapp: any string; Meta echoes it when checking the URL"
    )
    app_id: str | None = Field(
        None, max_length=64, description="botframework: the Azure Bot's Microsoft app id"
    )
    app_password: Secret = Field(
        None, description="botframework: the app's client secret (its password)"
    )
    tenant_id: str | None = Field(
        None, max_length=64, description="botframework: a single-tenant app's tenant id"
    )

    def credentials(self) -> dict[str, str]:
        """What was given, as `channels add` passes its flags."""
        given = self.model_dump(exclude={"kind"}, exclude_none=True)
        return {
            k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in given.items()
        }


class ChannelChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=channel_admin.NAME_LENGTH)
    # checked against the channel's kind by the shared implementation (422 when wrong)
    settings: Annotated[
        dict[str, Any] | None,
        WithJsonSchema({"anyOf": [ChannelSettings.model_json_schema(), {"type": "null"}]}),
    ] = Field(None, description="only what changes; a null setting goes back to its default")


_HEALTH = {
    "type": "object",
    "properties": {
        "last_received_at": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "when the newest inbound message arrived through the webhook",
        },
        "last_send_error": {
            "type": ["object", "null"],
            "description": "the newest message the platform refused for good, and why",
            "properties": {
                "message_id": {"type": "integer"},
                "error": {"type": ["string", "null"]},
                "at": {"type": ["string", "null"], "format": "date-time"},
            },
        },
    },
}
CHANNEL = {
    "type": "object",
    "required": ["id", "kind", "name", "webhook_url", "settings", "health"],
    "properties": {
        "id": {"type": "string"},
        "kind": {"type": "string"},
        "name": {"type": "string"},
        "webhook_url": {
            "type": ["string", "null"],
            "description": "where the platform posts (null: the channel takes no webhooks)",
        },
        "settings": {"$ref": REF.format(model="ChannelSettings")},
        "health": _HEALTH,
    },
}
CHANNELS = {"type": "object", "properties": {"items": {"type": "array", "items": CHANNEL}}}
ONE = "/api/v1/channels/{channel}"  # a channel's id is a string, e.g. telegram-1a2b3c4d5e6f


@routes.post(
    "/api/v1/channels",
    "Connect a channel: the credentials are checked at the platform (and the hub's webhook "
    "registered there) before anything is stored",
    body=NewChannel,
    status=201,
    said="connected",
    returns=CHANNEL,
    errors=(400, 401, 403, 422),
    refers=(ChannelSettings,),
)
async def create_channel(request: web.Request) -> web.Response:
    require(request, "manager")
    new = await json_body(request, NewChannel)
    space_id = request[PRINCIPAL].space_id
    try:
        info = await channel_admin.add_channel(request.app, space_id, new.kind, new.credentials())
    except ConfigError as exc:  # the platform's refusal, or what the kind needs
        raise Unprocessable(str(exc)) from None
    return web.json_response(info.as_json(), status=201)


@routes.get(
    "/api/v1/channels",
    "The space's channels (never their credentials), with their webhook URL, settings and health",
    returns=CHANNELS,
    refers=(ChannelSettings,),
)
async def list_channels(request: web.Request) -> web.Response:
    require(request, "manager")
    found = await channel_admin.list_channels(request.app, request[PRINCIPAL].space_id)
    return web.json_response({"items": [info.as_json() for info in found]})


@routes.get(ONE, "A channel, with its health", returns=CHANNEL, refers=(ChannelSettings,))
async def show_channel(request: web.Request) -> web.Response:
    require(request, "manager")
    info = await channel_admin.get_channel(
        request.app, request[PRINCIPAL].space_id, request.match_info["channel"]
    )
    return web.json_response(info.as_json())


@routes.patch(
    ONE,
    "Rename a channel or change its settings (at once)",
    body=ChannelChange,
    returns=CHANNEL,
    errors=(400, 401, 403, 404, 422),
    refers=(ChannelSettings,),
)
async def change_channel(request: web.Request) -> web.Response:
    require(request, "manager")
    change = await json_body(request, ChannelChange)
    info = await channel_admin.change_channel(
        request.app,
        request[PRINCIPAL].space_id,
        request.match_info["channel"],
        change.name,
        change.settings,
    )
    return web.json_response(info.as_json())


@routes.delete(
    ONE,
    "Remove a channel: its webhook at the platform (Telegram deleteWebhook), then the "
    "channel with its conversations",
    said="removed",
)
async def remove_channel(request: web.Request) -> web.Response:
    require(request, "manager")
    await channel_admin.remove_channel(
        request.app, request[PRINCIPAL].space_id, request.match_info["channel"]
    )
    return web.Response(status=204)
