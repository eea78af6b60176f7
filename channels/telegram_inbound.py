"""What a Telegram update says: who wrote (the contact), in which chat, and its parts.

Pure functions over aiogram's types, for `TelegramChannel.parse`. In a group (taken
with the channel's `groups` setting) the contact is the group itself: its identity is
the group's chat id, so the group has one conversation and replies go to the group, and
it is named after the group's title. Who wrote each message is kept in front of its
text ("Ana Lima: hi"), or as a first text part when it has none; so a group's message
never starts with a command, and `/start`, `/link` and `/channel` are read from private
chats only (anyone in a group could send them).
"""

from __future__ import annotations

from typing import Any

from aiogram.types import Chat, Message, User

from bot.model import ContactCardPart, LocationPart, MediaPart, Part, Sender, TextPart

GROUPS = ("group", "supergroup")  # taken with the `groups` setting; channels' posts never


def sender(user: User | None, chat: Chat | None) -> Sender:
    """The contact: the private chat's person, or the group itself (see the docstring)."""
    if chat is not None and chat.type != "private":
        return Sender(external_id=str(chat.id), name=chat.title)
    external_id = str(chat.id if chat is not None else user.id if user else "")
    if user is None:
        return Sender(external_id=external_id)
    return Sender(external_id=external_id, name=author_name(user), language=user.language_code)


def author_name(user: User) -> str | None:
    """A person's name as Telegram gives it, else their @username (without the @)."""
    return " ".join(n for n in (user.first_name, user.last_name) if n) or user.username


def signed(message: Message, parts: list[Part]) -> tuple[Part, ...]:
    """A group's message with its author's name in front (private chats: as they are)."""
    if message.chat.type == "private":
        return tuple(parts)
    # an anonymous group admin writes as the group (`sender_chat`), from a stand-in user
    author = message.sender_chat.title if message.sender_chat else None
    author = author or (author_name(message.from_user) if message.from_user else None) or "someone"
    first = parts[0]
    if isinstance(first, TextPart):
        return (TextPart(text=f"{author}: {first.text}"), *parts[1:])
    return (TextPart(text=f"{author}:"), *parts)


def message_id(message: Message) -> str:
    """Unique within the bot: Telegram numbers messages per chat."""
    return f"{message.chat.id}:{message.message_id}"


def button_title(query: Any) -> str | None:
    """The label of the button the person pressed, from the message that carried it."""
    markup = getattr(query.message, "reply_markup", None)
    for row in getattr(markup, "inline_keyboard", None) or []:
        for button in row:
            if button.callback_data == query.data:
                return button.text
    return None


def parts_of(message: Message) -> list[Part]:
    """The unified parts of a message (none: a kind we do not take, such as a poll)."""
    caption = message.caption
    parts: list[Part] = []
    if message.text:
        parts.append(TextPart(text=message.text))
    if message.photo:
        largest = max(message.photo, key=lambda p: p.width * p.height)
        parts.append(
            MediaPart(
                type="image", media_id=largest.file_id, size=largest.file_size, caption=caption
            )
        )
    for kind, media in (
        ("file", message.document),
        ("audio", message.audio),
        ("audio", message.voice),
        ("video", message.video),
        ("video", message.video_note),
        ("sticker", message.sticker),
    ):
        if media is not None:
            parts.append(
                MediaPart(
                    type=kind,
                    media_id=media.file_id,
                    mime_type=getattr(media, "mime_type", None),
                    name=getattr(media, "file_name", None),
                    size=getattr(media, "file_size", None),
                    caption=caption if kind != "sticker" else None,
                )
            )
    if message.venue is not None:
        venue = message.venue
        parts.append(
            LocationPart(
                latitude=venue.location.latitude,
                longitude=venue.location.longitude,
                name=venue.title,
                address=venue.address,
            )
        )
    elif message.location is not None:
        parts.append(
            LocationPart(latitude=message.location.latitude, longitude=message.location.longitude)
        )
    if message.contact is not None:
        contact = message.contact
        name = " ".join(n for n in (contact.first_name, contact.last_name) if n)
        parts.append(
            ContactCardPart(name=name or contact.phone_number, phones=(contact.phone_number,))
        )
    return parts
