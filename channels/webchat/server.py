"""The web-chat transport: demo page, widget script, websocket, uploads.

Entry point `chancenter.extensions:webchat`. Frames become unified events and go
through the same ingest commit as any webhook; replies come back through
`WebchatChannel.send`.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import sqlalchemy as sa
from aiohttp import BodyPartReader, WebSocketError, WSMsgType, web
from aiohttp.http_exceptions import HttpProcessingError

from bot.api.params import message_json
from bot.delivery.bus import RedisBus
from bot.errors import ChanCenterError, InvalidPayload, NotFound, PayloadTooLarge, error_response
from bot.keys import CHANNELS, DB, DEFAULT_SPACE, REDIS, SETTINGS
from bot.model import (
    MediaPart,
    MessageReceived,
    Part,
    Postback,
    Seen,
    Sender,
    TextPart,
)
from bot.pipeline.webhooks import accept
from bot.storage import redis_keys
from bot.storage.tables import channels, conversations, identities, messages
from channels.base import Channel
from channels.webchat.cleanup import sweep_forever
from channels.webchat.frames import Hello, Receipt, SendMessage, SendPostback, parse_frame
from channels.webchat.hub import WEBCHAT_HUB, WebchatHub
from channels.webchat.session import new_session, visitor_of
from channels.webchat.uploads import QuotaExceeded, UploadStore, serve_file

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
UPLOADS = web.AppKey("webchat_uploads", UploadStore)
HISTORY = 200
MAX_FRAME = 64 * 1024
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file itself


@dataclass
class Visitor:
    id: str
    language: str | None


async def _webchat_channel(request: web.Request, channel_id: str | None) -> Channel:
    if not channel_id:
        raise InvalidPayload("say which web-chat channel: ?channel=<channel id>")
    channel = await request.app[CHANNELS].get(channel_id)
    if channel.kind != "webchat":
        raise NotFound(f"no web-chat channel {channel_id!r}")
    return channel


async def websocket(request: web.Request) -> web.WebSocketResponse:
    channel = await _webchat_channel(request, request.query.get("channel"))
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_FRAME)
    await ws.prepare(request)
    hub = request.app[WEBCHAT_HUB]
    visitor: Visitor | None = None
    try:
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                _closed_on(channel, msg.data)
                break
            if msg.type != WSMsgType.TEXT:
                await _error(ws, "invalid_frame", "send JSON text frames")
                continue
            try:
                frame = parse_frame(msg.data)
            except InvalidPayload as exc:
                await _error(ws, "invalid_frame", str(exc))
                continue
            if isinstance(frame, Hello):
                if visitor is not None:
                    hub.remove((channel.id, visitor.id), ws)
                visitor = await _hello(request, ws, channel, frame)
                hub.add((channel.id, visitor.id), ws)
            elif visitor is None:
                await _error(ws, "no_session", "send a hello frame first")
            else:
                await _handled(request, ws, channel, visitor, frame)
    except ConnectionResetError:  # the visitor went away while we answered
        log.debug("web-chat socket went away", extra={"channel": channel.id})
    finally:
        if visitor is not None:
            hub.remove((channel.id, visitor.id), ws)
    return ws


async def _handled(
    request: web.Request, ws: web.WebSocketResponse, channel: Channel, visitor: Visitor, frame: Any
) -> None:
    """`_handle`, where a failure of ours (the database, a bug) is logged and the visitor
    told to resend: it must not close the socket, nor take the other frames with it."""
    try:
        await _handle(request, ws, channel, visitor, frame)
    except ConnectionResetError:
        raise
    except Exception:
        log.exception("web-chat frame failed", extra={"channel": channel.id})
        await ws.send_json(
            {
                "type": "error",
                "code": "server_error",
                "detail": "this frame could not be handled; send it again",
                "id": getattr(frame, "id", None),
            }
        )


def _closed_on(channel: Channel, exc: BaseException) -> None:
    """aiohttp has already closed the socket: a frame over `MAX_FRAME` (1009) or a text
    frame that is not UTF-8 (1007). One line, no traceback: it is the visitor's doing."""
    if isinstance(exc, WebSocketError):
        log.info(
            "web-chat frame refused: socket closed",
            extra={"channel": channel.id, "close_code": int(exc.code), "reason": str(exc)[:200]},
        )
    else:
        log.debug("web-chat socket failed", extra={"channel": channel.id, "error": repr(exc)})


async def _hello(
    request: web.Request, ws: web.WebSocketResponse, channel: Channel, frame: Hello
) -> Visitor:
    key = request.app[SETTINGS].signing_key()
    visitor_id = visitor_of(key, channel.id, frame.token)
    token = frame.token
    if visitor_id is None:
        visitor_id, token = new_session(key, channel.id)
    await ws.send_json({"type": "session", "token": token, "visitor": visitor_id})
    await ws.send_json(
        {"type": "history", "messages": await _history(request, channel, visitor_id)}
    )
    return Visitor(visitor_id, frame.language)


async def _history(request: web.Request, channel: Channel, visitor_id: str) -> list[dict[str, Any]]:
    """The visitor's own messages only: found through their identity on this channel."""
    async with request.app[DB].read() as conn:
        rows = (
            await conn.execute(
                sa.select(messages)
                .join(conversations, conversations.c.id == messages.c.conversation_id)
                .join(identities, identities.c.id == conversations.c.identity_id)
                .where(identities.c.channel_id == channel.id)
                .where(identities.c.external_id == visitor_id)
                .order_by(messages.c.id.desc())
                .limit(HISTORY)
            )
        ).all()
    history = []
    for row in reversed(rows):
        item = message_json(row)
        if row.direction == "in" and row.external_id:
            item["client_id"] = row.external_id.split(":", 1)[-1]
        history.append(item)
    return history


async def _handle(
    request: web.Request,
    ws: web.WebSocketResponse,
    channel: Channel,
    visitor: Visitor,
    frame: Any,
) -> None:
    sender = Sender(external_id=visitor.id, language=visitor.language)
    if isinstance(frame, SendMessage):
        try:
            parts = _parts(request, channel, visitor, frame)
        except (InvalidPayload, NotFound) as exc:
            await _error(ws, "invalid_message", str(exc), id=frame.id)
            return
        event: Any = MessageReceived(
            external_id=f"{visitor.id}:{frame.id}", sender=sender, parts=tuple(parts)
        )
    elif isinstance(frame, SendPostback):
        event = Postback(
            external_id=f"{visitor.id}:{frame.id}",
            sender=sender,
            payload=frame.payload,
            title=frame.title,
        )
    elif isinstance(frame, Receipt):
        seen = Seen(sender=sender, message_id=frame.message_id, status=frame.status)
        await accept(request.app, channel, [seen])
        return
    else:  # typing: reaches the agent desk once it exists
        return
    stored = await accept(request.app, channel, [event])
    await ws.send_json(
        {
            "type": "ack",
            "id": frame.id,
            "message_id": stored.message_ids[0] if stored.message_ids else None,
            "duplicate": stored.duplicates > 0,
        }
    )


def _parts(
    request: web.Request, channel: Channel, visitor: Visitor, frame: SendMessage
) -> list[Part]:
    parts: list[Part] = []
    store = request.app[UPLOADS]
    for attachment in frame.attachments:
        stored, _ = store.get(attachment.file_id)
        if stored.visitor_id != visitor.id or stored.channel_id != channel.id:
            raise NotFound("no such file")  # another visitor's file is not theirs to send
        if not store.attachable(stored.file_id):
            raise InvalidPayload("that upload has expired; upload it again")
        parts.append(
            MediaPart(
                type=stored.kind,
                url=stored.url,
                mime_type=stored.mime_type,
                name=stored.name,
                size=stored.size,
            )
        )
    if frame.text.strip():
        parts.insert(0, TextPart(text=frame.text))
    if not parts:
        raise InvalidPayload("a message needs text or an attachment")
    return parts


async def _error(ws: web.WebSocketResponse, code: str, detail: str, **extra: Any) -> None:
    log.info("web-chat frame refused", extra={"code": code, "detail": detail})
    await ws.send_json({"type": "error", "code": code, "detail": detail, **extra})


async def upload(request: web.Request) -> web.Response:
    """`POST /webchat/upload?channel=ID`, `Authorization: Bearer <session token>`, field `file`."""
    channel = await _webchat_channel(request, request.query.get("channel"))
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    visitor_id = visitor_of(request.app[SETTINGS].signing_key(), channel.id, token.strip())
    if scheme.lower() != "bearer" or visitor_id is None:
        return error_response(401, "send the web-chat session token as a bearer token")
    store = request.app[UPLOADS]
    if (request.content_length or 0) > store.max_bytes + MULTIPART_OVERHEAD:
        # refused on the declared length, before a byte of the body is read
        raise PayloadTooLarge(f"file larger than {store.max_bytes} bytes")
    if not request.content_type.startswith("multipart/"):
        raise InvalidPayload("send the file as multipart/form-data in a field named 'file'")
    try:
        reader = await request.multipart()
        part = await reader.next()
        if not isinstance(part, BodyPartReader) or part.name != "file":
            raise InvalidPayload("send the file in a multipart field named 'file'")
        stored = await store.save(part, channel.id, visitor_id)
    except QuotaExceeded as exc:
        log.info("web-chat upload quota used", extra={"channel": channel.id})
        response = error_response(429, str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except TimeoutError:
        log.info("web-chat upload too slow", extra={"channel": channel.id})
        return error_response(408, f"the file stalled for {store.idle_timeout:g} s; send it again")
    except ChanCenterError:
        raise
    except (ValueError, HttpProcessingError) as exc:  # aiohttp's multipart parser refused it
        log.info("web-chat upload malformed", extra={"channel": channel.id, "error": repr(exc)})
        raise InvalidPayload("the body is not the multipart/form-data it says it is") from None
    log.info(
        "web-chat upload stored",
        extra={"channel": channel.id, "size": stored.size, "mime": stored.mime_type},
    )
    return web.json_response(
        {
            "file_id": stored.file_id,
            "url": stored.url,
            "name": stored.name,
            "mime_type": stored.mime_type,
            "size": stored.size,
        }
    )


async def file(request: web.Request) -> web.FileResponse:
    return await serve_file(request.app[UPLOADS], request.match_info["file_id"])


async def widget_js(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(
        STATIC / "widget.js", headers={"Content-Type": "application/javascript; charset=utf-8"}
    )


async def demo(request: web.Request) -> web.Response:
    """The demo site: a page with the default space's widget on it."""
    async with request.app[DB].read() as conn:
        channel_id = (
            await conn.execute(
                sa.select(channels.c.id)
                .where(channels.c.space_id == request.app[DEFAULT_SPACE])
                .where(channels.c.kind == "webchat")
                .order_by(channels.c.created_at)
                .limit(1)
            )
        ).scalar()
    if channel_id is None:
        raise NotFound("the default space has no web-chat channel; add one with the CLI")
    public_url = html.escape(str(request.app[SETTINGS].public_url).rstrip("/"))
    page = Template((STATIC / "demo.html").read_text()).substitute(
        channel_id=channel_id, public_url=public_url
    )
    return web.Response(text=page, content_type="text/html")


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    redis = app.get(REDIS)
    app[WEBCHAT_HUB] = hub = WebchatHub(RedisBus(redis, redis_keys.WEBCHAT) if redis else None)
    app[UPLOADS] = store = UploadStore(
        settings.data_dir / "uploads",
        settings.max_upload_bytes,
        idle_timeout=settings.read_timeout,
    )
    tasks = [asyncio.create_task(sweep_forever(store, app[DB]))]
    if hub.bus is not None:
        tasks.append(asyncio.create_task(hub.bus.listen(hub.delivered_from_bus)))
    yield
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await hub.close_all()


def setup(app: web.Application) -> None:
    """Entry point `chancenter.extensions:webchat`."""
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_get("/", demo)
    app.router.add_get("/webchat/widget.js", widget_js)
    app.router.add_get("/webchat/ws", websocket)
    app.router.add_post("/webchat/upload", upload)
    app.router.add_get("/webchat/files/{file_id}", file)
