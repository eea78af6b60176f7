"""The unified conversation model: what every channel parses into and renders from.

Frozen pydantic models; message parts form a discriminated union on `type`, so a
stored message round-trips exactly and handlers never see a platform's payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- message parts -----------------------------------------------------------


class TextPart(Frozen):
    """Plain text. Example: `TextPart(text="hi")`."""

    type: Literal["text"] = "text"
    text: str


class MediaPart(Frozen):
    """A picture, sound, video, file or sticker, by URL or by the platform's media id."""

    type: Literal["image", "audio", "video", "file", "sticker"]
    url: str | None = None
    media_id: str | None = Field(None, description="the platform's reference, fetched on demand")
    mime_type: str | None = None
    name: str | None = None
    size: int | None = None
    caption: str | None = None


class LocationPart(Frozen):
    type: Literal["location"] = "location"
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    name: str | None = None
    address: str | None = None


class ContactCardPart(Frozen):
    """A shared contact (vCard-like), not the sender."""

    type: Literal["contact_card"] = "contact_card"
    name: str
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()


class QuickReply(Frozen):
    """One button. `payload` comes back in a `PostbackPart` when chosen."""

    title: str = Field(min_length=1)
    payload: str = Field(min_length=1)


class QuickRepliesPart(Frozen):
    """Buttons offered to the contact; channels render them natively or as a numbered list."""

    type: Literal["quick_replies"] = "quick_replies"
    replies: tuple[QuickReply, ...] = Field(min_length=1)


class PostbackPart(Frozen):
    """A button or quick reply the contact chose."""

    type: Literal["postback"] = "postback"
    payload: str
    title: str | None = None


class ReactionPart(Frozen):
    """An emoji reaction to an earlier message (`to_external_id`); empty emoji removes it."""

    type: Literal["reaction"] = "reaction"
    emoji: str
    to_external_id: str


class TemplatePart(Frozen):
    """A pre-approved WhatsApp message template: the only message WhatsApp lets a business
    start a conversation with, outside the 24-hour window. Other channels refuse it.

    Example: `TemplatePart(name="order_update", language="en_US", params=("Ana", "#42"))`
    fills the body's `{{1}}` and `{{2}}` of the template approved under that name.
    """

    type: Literal["template"] = "template"
    name: str = Field(min_length=1, description="the template's name, as approved by Meta")
    language: str = Field(min_length=1, description="its language and locale, e.g. en_US")
    params: tuple[str, ...] = Field((), description="the body's {{1}}, {{2}}... in order")


Part = Annotated[
    TextPart
    | MediaPart
    | LocationPart
    | ContactCardPart
    | QuickRepliesPart
    | PostbackPart
    | ReactionPart
    | TemplatePart,
    Field(discriminator="type"),
]
parts_adapter: TypeAdapter[list[Part]] = TypeAdapter(list[Part])


def text_of(parts: list[Part] | tuple[Part, ...]) -> str:
    """The words of a message, for bots and search: texts, captions and chosen titles."""
    words: list[str] = []
    for part in parts:
        if isinstance(part, TextPart):
            words.append(part.text)
        elif isinstance(part, MediaPart) and part.caption:
            words.append(part.caption)
        elif isinstance(part, PostbackPart):
            words.append(part.title or part.payload)
    return "\n".join(words)


# --- who and where -------------------------------------------------------------


class Sender(Frozen):
    """The contact as one platform knows them (one identity)."""

    external_id: str = Field(min_length=1, description="the platform's user id, e.g. a chat id")
    name: str | None = None
    language: str | None = None
    phone: str | None = None
    avatar_url: str | None = None
    address: str | None = Field(
        None,
        description="the channel's own JSON saying how to reach this identity when the id "
        "alone does not (a Bot Framework conversation reference); kept, newest wins",
    )


# --- inbound events ------------------------------------------------------------


class MessageReceived(Frozen):
    """A contact sent a message. `external_id` is the platform's message id (dedupe key)."""

    type: Literal["message"] = "message"
    external_id: str = Field(min_length=1)
    sender: Sender
    parts: tuple[Part, ...] = Field(min_length=1)
    sent_at: datetime = Field(default_factory=utcnow)


class Postback(Frozen):
    """A contact chose a button or quick reply."""

    type: Literal["postback"] = "postback"
    external_id: str = Field(min_length=1)
    sender: Sender
    payload: str
    title: str | None = None
    referral: str | None = Field(
        None, description="where the contact came from: a deep link, an ad"
    )
    sent_at: datetime = Field(default_factory=utcnow)


class Reaction(Frozen):
    type: Literal["reaction"] = "reaction"
    external_id: str = Field(min_length=1)
    sender: Sender
    emoji: str
    to_external_id: str
    sent_at: datetime = Field(default_factory=utcnow)


class MessageEdited(Frozen):
    """A contact edited an earlier message; the stored parts are replaced."""

    type: Literal["edited"] = "edited"
    external_id: str
    sender: Sender
    parts: tuple[Part, ...] = Field(min_length=1)


DeliveryStatus = Literal["sent", "delivered", "read", "failed"]


class StatusChanged(Frozen):
    """The platform reports what happened to one of our outbound messages."""

    type: Literal["status"] = "status"
    external_id: str = Field(description="the platform's id of our outbound message")
    status: DeliveryStatus
    error: str | None = None


class ReadUpTo(Frozen):
    """The contact has read everything we sent before `watermark` (Messenger's read receipts)."""

    type: Literal["read_up_to"] = "read_up_to"
    sender: Sender
    watermark: datetime


class Seen(Frozen):
    """The contact's app names our message by our own id (the web chat, where the hub is
    the platform): it may come before the sender has recorded the send."""

    type: Literal["seen"] = "seen"
    sender: Sender
    message_id: int = Field(ge=1, le=2**63 - 1)  # the databases' BIGINT
    status: Literal["delivered", "read"]


class Author(Frozen):
    """Who sent a message: `messages.sender_type` and `sender_id`, `sender` in the API.

    `id` says which one: a user's, automation's or broadcast's id; for a bot, `builtin` or
    the Dialogflow integration's; for a flow, the survey's id or `away`.
    """

    type: Literal["contact", "user", "bot", "flow", "automation", "broadcast", "unknown"]
    id: str | None = None

    @classmethod
    def user(cls, user_id: int | None) -> Author:
        return cls(type="user", id=str(user_id)) if user_id is not None else UNKNOWN

    @classmethod
    def survey(cls, survey_id: int) -> Author:
        return cls(type="flow", id=str(survey_id))


BOT = Author(type="bot")  # the handler says which bot where it knows
AWAY = Author(type="flow", id="away")
UNKNOWN = Author(type="unknown")


class Reach(IntEnum):
    """`identities.blocked`: whether an identity may still be sent to."""

    OPEN = 0
    BLOCKED = 1  # the contact blocked us; they may unblock
    ERASED = 2  # the contact was erased: never again


class ContactBlocked(Frozen):
    """The contact blocked (or unblocked) us: sends to them will fail until they unblock."""

    type: Literal["blocked"] = "blocked"
    sender: Sender
    blocked: bool


Event = Annotated[
    MessageReceived
    | Postback
    | Reaction
    | MessageEdited
    | StatusChanged
    | ReadUpTo
    | Seen
    | ContactBlocked,
    Field(discriminator="type"),
]
event_adapter: TypeAdapter[Event] = TypeAdapter(Event)
Inbound = MessageReceived | Postback | Reaction


def inbound_parts(event: Inbound) -> tuple[Part, ...]:
    """The parts a conversation's history shows for an inbound event."""
    if isinstance(event, Postback):
        return (PostbackPart(payload=event.payload, title=event.title),)
    if isinstance(event, Reaction):
        return (ReactionPart(emoji=event.emoji, to_external_id=event.to_external_id),)
    return event.parts


# --- outbound ----------------------------------------------------------------------


class Outbound(Frozen):
    """One message for a channel to deliver to `recipient` (an identity's external id)."""

    message_id: int
    conversation_id: int
    recipient: str
    address: str | None = Field(None, description="the identity's `Sender.address`, if any")
    parts: tuple[Part, ...] = Field(min_length=1)
    sender_name: str | None = Field(
        None, description="the agent's name, where the platform shows it"
    )
    last_inbound_at: datetime | None = Field(
        None, description="when the contact last wrote: platforms' 24-hour windows count from it"
    )
    tag: str | None = Field(
        None,
        description="a Messenger message tag letting a broadcast reach a contact outside the "
        "24-hour window (e.g. POST_PURCHASE_UPDATE); ignored elsewhere",
    )


@dataclass(frozen=True)
class Due:
    """An outbox row to send: read by the sender, or handed to it by the worker that
    committed it (which saves the sender looking for it)."""

    id: int  # the outbox row's
    attempts: int
    channel_id: str
    message_id: int
    conversation_id: int
    parts: tuple[Part, ...]
    identity_id: int | None
    recipient: str
    blocked: int  # a `Reach`
    last_inbound_at: datetime | None
    sender_name: str | None = None
    address: str | None = None


class SentReceipt(Frozen):
    """What a platform answered to a send: its message id(s) for status updates."""

    external_id: str | None = None
