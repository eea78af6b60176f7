"""Telegram, through aiogram: its `Update` types to parse, its `Bot` to send.

Webhooks carry `X-Telegram-Bot-Api-Secret-Token`, set by us at `setWebhook`.
A callback query is answered in the webhook's own response (the Bot API runs a
method returned there), so the button stops spinning without another request.

Groups: a channel takes messages from groups and supergroups only with its `groups`
setting on (`PATCH /api/v1/channels/{id}`, `chancenter channels set ID --groups true`);
otherwise they are dropped with a debug line. A group is one contact with one
conversation (`channels.telegram_inbound` says how). With the bot's privacy mode on (the
BotFather default) Telegram sends it only commands, replies to it and mentions.
"""

from __future__ import annotations

import hmac
import io
import logging
import secrets
from collections.abc import Mapping
from typing import Any, ClassVar

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import (
    SendAudio,
    SendDocument,
    SendLocation,
    SendMessage,
    SendPhoto,
    SendSticker,
    SendVideo,
    TelegramMethod,
)
from aiogram.methods.base import Response
from aiogram.types import (
    Chat,
    File,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
    User,
)
from aiogram.utils.token import TokenValidationError
from pydantic import BaseModel, SecretStr

from bot.delivery.ratelimit import paced, per_window
from bot.errors import ConfigError, PermanentFailure, RecipientBlocked, RetryLater, WebhookRejected
from bot.model import (
    ContactBlocked,
    ContactCardPart,
    Event,
    LocationPart,
    MediaPart,
    MessageEdited,
    MessageReceived,
    Outbound,
    Postback,
    QuickRepliesPart,
    SentReceipt,
    TextPart,
)
from channels.base import Channel, ChannelContext, Media, parse_each, refuse_templates
from channels.render import Capabilities, fits, numbered, split_text
from channels.telegram_inbound import (
    GROUPS,
    button_title,
    message_id,
    parts_of,
    sender,
    signed,
)
from channels.telegram_session import SESSION

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
CAPABILITIES = Capabilities(
    text_limit=4096,
    quick_replies=100,  # an inline keyboard, one button a row up to here
    button_title=64,
    payload_bytes=64,  # callback_data
    per_second=30,
    per_chat_per_second=1,
)
# aiogram parametrizes `Response[...]` on every call, and pydantic keeps that class only
# while something holds it: rebuilding it took 14% of a send. Held here, it is built once.
_RESPONSES = tuple(Response[t] for t in (Message, bool, File, User))
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
GROUP_PER_MINUTE = 20  # Telegram's limit for a group, whatever the per-chat pace
# 403s after which nothing reaches the chat until its person unblocks or adds the bot again
GONE = ("bot was blocked by the user", "user is deactivated", "bot was kicked", "not a member")


class TelegramCredentials(BaseModel):
    token: SecretStr
    secret_token: SecretStr  # what Telegram echoes in SECRET_HEADER


class TelegramChannel(Channel):
    kind = "telegram"
    credentials_model = TelegramCredentials
    capabilities = CAPABILITIES
    group_chats: ClassVar[bool] = True  # the `groups` setting applies (channel_admin reads it)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._bot: Bot | None = None
        self._account = self.ctx.limits.bucket(f"telegram:{self.id}", *paced(self.per_second))
        self._chats = self.ctx.limits.bucket(f"telegram:{self.id}:chat", 1.0, burst=3)
        self._groups = self.ctx.limits.bucket(
            f"telegram:{self.id}:group", *per_window(GROUP_PER_MINUTE, 60.0)
        )

    @classmethod
    async def prepare(cls, given: Mapping[str, str], ctx: ChannelContext) -> tuple[BaseModel, str]:
        token = given.get("token")
        if not token:
            raise ConfigError("a telegram channel needs --token (from @BotFather)")
        me = await check_token(ctx.app[SESSION].get(), token)
        credentials = TelegramCredentials(
            token=SecretStr(token), secret_token=SecretStr(secrets.token_urlsafe(32))
        )
        return credentials, f"@{me.username}"

    @property
    def bot(self) -> Bot:
        if self._bot is None:
            token = self.config.credentials.token.get_secret_value()  # type: ignore[attr-defined]
            self._bot = Bot(token, session=self.ctx.app[SESSION].get())
        return self._bot

    # --- in ---------------------------------------------------------------------

    def verify(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        """The header's exact bytes in constant time (surrogate escapes give back bytes that
        are not UTF-8, where `encode()` would raise: a 500); an empty secret matches nothing."""
        expected = self.config.credentials.secret_token.get_secret_value().encode()  # type: ignore[attr-defined]
        given = headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, expected) or not expected:
            raise WebhookRejected(f"bad or missing {SECRET_HEADER}")

    def parse(self, payload: Any) -> list[Event]:
        # Telegram sends one update per request; a list is accepted for replays and tests.
        items = payload if isinstance(payload, list) else [payload]
        return parse_each(self, items, lambda item: self._events(Update.model_validate(item)))

    def _events(self, update: Update) -> list[Event]:
        if update.message is not None:
            return self._message(update.message)
        if update.edited_message is not None:
            message = update.edited_message
            parts = parts_of(message)
            if not self._accepts(message.chat) or not parts:
                return []
            return [
                MessageEdited(
                    external_id=message_id(message),
                    sender=sender(message.from_user, message.chat),
                    parts=signed(message, parts),
                )
            ]
        if update.callback_query is not None:
            query = update.callback_query
            chat = query.message.chat if query.message else None
            if chat is not None and not self._accepts(chat):
                return []
            return [
                Postback(
                    external_id=f"cb:{query.id}",
                    sender=sender(query.from_user, chat),
                    payload=query.data or "",
                    title=button_title(query),
                )
            ]
        if update.my_chat_member is not None:
            member = update.my_chat_member
            if member.chat.type != "private":
                return []
            status = member.new_chat_member.status
            return [
                ContactBlocked(
                    sender=sender(member.from_user, member.chat),
                    blocked=status in ("kicked", "left"),
                )
            ]
        log.debug("telegram: update kind ignored", extra={"update": update.update_id})
        return []

    def _accepts(self, chat: Chat) -> bool:
        """Private chats always; groups and supergroups with the `groups` setting on."""
        if chat.type == "private":
            return True
        if chat.type in GROUPS and self.config.settings.get("groups"):
            return True
        log.debug(
            "telegram: group message ignored (set groups on the channel to take them)",
            extra={"channel": self.id, "chat_type": chat.type},
        )
        return False

    def _message(self, message: Message) -> list[Event]:
        if not self._accepts(message.chat):
            return []
        who = sender(message.from_user, message.chat)
        text = message.text or ""
        private = message.chat.type == "private"
        if private and (text == "/start" or text.startswith("/start ")):
            referral = text[len("/start") :].strip() or None
            return [
                Postback(
                    external_id=message_id(message),
                    sender=who,
                    payload="event:WELCOME",
                    title="/start",
                    referral=referral,
                )
            ]
        parts = parts_of(message)
        if not parts:
            log.debug("telegram: message kind ignored", extra={"channel": self.id})
            return []
        return [
            MessageReceived(
                external_id=message_id(message),
                sender=who,
                parts=signed(message, parts),
                sent_at=message.date,
            )
        ]

    def webhook_response(self, payload: Any) -> dict[str, Any] | None:
        query = payload.get("callback_query") if isinstance(payload, dict) else None
        query_id = query.get("id") if isinstance(query, dict) else None
        if isinstance(query_id, str) and query_id:
            return {"method": "answerCallbackQuery", "callback_query_id": query_id}
        return None

    # --- out --------------------------------------------------------------------

    def render(self, outbound: Outbound) -> list[TelegramMethod[Any]]:
        chat_id = int(outbound.recipient)
        methods: list[TelegramMethod[Any]] = []
        texts: list[str] = []
        markup = None
        for part in outbound.parts:
            if isinstance(part, TextPart):
                texts.append(part.text)
            elif isinstance(part, QuickRepliesPart):
                if fits(part.replies, CAPABILITIES, CAPABILITIES.quick_replies):
                    markup = InlineKeyboardMarkup(
                        inline_keyboard=[
                            [InlineKeyboardButton(text=r.title, callback_data=r.payload)]
                            for r in part.replies
                        ]
                    )
                else:
                    texts.append(numbered(part.replies))
            elif isinstance(part, MediaPart) and part.url:
                methods.append(_media_method(chat_id, part))
            elif isinstance(part, LocationPart):
                methods.append(
                    SendLocation(chat_id=chat_id, latitude=part.latitude, longitude=part.longitude)
                )
            elif isinstance(part, ContactCardPart):
                texts.append(f"{part.name} {' '.join(part.phones)}".strip())
        if outbound.sender_name and texts:
            texts[0] = f"{outbound.sender_name}: {texts[0]}"
        chunks = split_text("\n\n".join(texts), CAPABILITIES.text_limit) if texts else []
        for n, chunk in enumerate(chunks):
            last = n == len(chunks) - 1
            methods.append(
                SendMessage(chat_id=chat_id, text=chunk, reply_markup=markup if last else None)
            )
        if markup is not None and not chunks:
            methods.append(SendMessage(chat_id=chat_id, text="…", reply_markup=markup))
        return methods

    async def send(self, outbound: Outbound) -> SentReceipt:
        refuse_templates(outbound)
        last = None
        group = outbound.recipient.startswith("-")  # groups, supergroups, channels
        for method in self.render(outbound):
            # the chat's own limits first: a token of the bot's is not held while they wait
            if group:
                await self._groups.acquire(outbound.recipient)
            await self._chats.acquire(outbound.recipient)
            await self._account.acquire()
            try:
                last = await self.bot(method)
            except TelegramAPIError as exc:
                raise _delivery_error(exc) from None
        return SentReceipt(external_id=message_id(last) if isinstance(last, Message) else None)

    async def fetch_media(self, media_id: str) -> Media:
        try:
            file = await self.bot.get_file(media_id)
            buffer = io.BytesIO()
            await self.bot.download_file(file.file_path or "", destination=buffer)
        except TelegramAPIError as exc:
            raise _delivery_error(exc) from None
        return Media(
            buffer.getvalue(),
            "application/octet-stream",
            (file.file_path or "").rsplit("/", 1)[-1] or None,
        )

    async def connect(self, public_url: str) -> None:
        secret = self.config.credentials.secret_token.get_secret_value()  # type: ignore[attr-defined]
        try:
            await self.bot.set_webhook(
                url=f"{public_url.rstrip('/')}/webhooks/{self.id}",
                secret_token=secret,
                allowed_updates=ALLOWED_UPDATES,
            )
        except TelegramAPIError as exc:
            raise ConfigError(f"Telegram refused the webhook: {exc.message}") from None

    async def disconnect(self) -> None:
        try:
            await self.bot.delete_webhook()
        except TelegramAPIError as exc:
            log.warning("telegram: deleteWebhook failed", extra={"error": exc.message})


async def check_token(session: AiohttpSession, token: str) -> User:
    """`getMe`: the bot the token belongs to, or a ConfigError saying what to do."""
    try:
        bot = Bot(token, session=session)
    except TokenValidationError as exc:
        raise ConfigError(
            f"that is not a Telegram bot token ({exc}): it looks like 123456:ABC-DEF"
        ) from None
    try:
        return await bot.get_me()
    except TelegramUnauthorizedError:
        raise ConfigError(
            "Telegram says the token is not valid: copy it again from @BotFather"
        ) from None
    except TelegramAPIError as exc:
        raise ConfigError(f"Telegram did not accept the token: {exc.message}") from None


def _delivery_error(exc: TelegramAPIError) -> Exception:
    """The one place Telegram's errors become retry-or-give-up decisions."""
    if isinstance(exc, TelegramRetryAfter):
        return RetryLater(float(exc.retry_after), "Telegram rate limit")
    if isinstance(exc, TelegramServerError | TelegramNetworkError):
        return RetryLater(5.0, f"Telegram unavailable: {exc.message}")
    if isinstance(exc, TelegramForbiddenError):
        if any(gone in exc.message for gone in GONE):
            return RecipientBlocked(f"the contact blocked the bot or left ({exc.message})")
        return PermanentFailure(f"Telegram does not let the bot write here ({exc.message})")
    if isinstance(exc, TelegramUnauthorizedError):
        return PermanentFailure("the bot token was revoked: add the channel again with a new one")
    if isinstance(exc, TelegramBadRequest):
        return PermanentFailure(f"Telegram refused the message: {exc.message}")
    return RetryLater(10.0, exc.message)


def _media_method(chat_id: int, part: MediaPart) -> TelegramMethod[Any]:
    url, caption = part.url, part.caption
    if part.type == "image":
        return SendPhoto(chat_id=chat_id, photo=url, caption=caption)
    if part.type == "video":
        return SendVideo(chat_id=chat_id, video=url, caption=caption)
    if part.type == "audio":
        return SendAudio(chat_id=chat_id, audio=url, caption=caption)
    if part.type == "sticker":
        return SendSticker(chat_id=chat_id, sticker=url)
    return SendDocument(chat_id=chat_id, document=url, caption=caption)
