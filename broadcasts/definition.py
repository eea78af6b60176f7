"""What a broadcast says and to whom: the request's shape, checked before anything is stored.

One message for every recipient, written once: text with `{{contact.first_name}}`-style
variables, a shared shortcut, media, quick replies, or a WhatsApp template (the only
message WhatsApp lets a business start outside the 24-hour window). On Messenger an
allowed message tag does the same for the updates Meta allows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import NotFound, Unprocessable
from bot.model import MediaPart, QuickReply
from bot.storage.tables import channels, contacts, field_definitions, shortcuts, views
from bot.workspace import shortcuts as shortcut_ops
from channels.messenger import BROADCAST_TAGS

# a recipient's status; `delivered` and `read` are a sent message's, as the platform reports
RECIPIENT_STATUSES = (
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "failed",
    "skipped",
    "interrupted",
    "cancelled",
)
MESSENGER_TAGS = tuple(sorted(BROADCAST_TAGS))
MAX_CONTACT_IDS = 10_000  # a longer list is a view's work


class Template(BaseModel):
    """A pre-approved WhatsApp message template; `params` fill its body's {{1}}, {{2}}..."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=512)
    language: str = Field("en_US", min_length=2, max_length=16)
    params: list[str] = Field(default_factory=list, max_length=20)


class BroadcastMessage(BaseModel):
    """One of `text`, `shortcut_id`, `media` or `template`; quick replies go with the first
    three. Example: `{"text": "Hi {{contact.first_name}}, 20% off until Sunday"}`."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(None, min_length=1, max_length=4096)
    shortcut_id: int | None = None
    media: list[MediaPart] = Field(default_factory=list, max_length=10)
    quick_replies: list[QuickReply] = Field(default_factory=list, max_length=10)
    template: Template | None = None
    tag: str | None = Field(
        None,
        description="Messenger: the message tag that allows it outside 24 hours",
        json_schema_extra={"enum": list(MESSENGER_TAGS)},
    )

    @field_validator("tag")
    @classmethod
    def _allowed_tag(cls, tag: str | None) -> str | None:
        if tag is not None and tag not in BROADCAST_TAGS:
            raise ValueError(f"Messenger allows these tags after 24 hours: {MESSENGER_TAGS}")
        return tag

    @model_validator(mode="after")
    def _one_content(self) -> BroadcastMessage:
        if self.template is not None:
            if self.text or self.shortcut_id or self.media or self.quick_replies:
                raise ValueError("a template is the whole message: send it alone")
        elif self.text is None and self.shortcut_id is None and not self.media:
            raise ValueError("say something: give text, shortcut_id, media or template")
        if self.text is not None and self.shortcut_id is not None:
            raise ValueError("give text or shortcut_id, not both")
        return self


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    skip_with_person: bool = Field(
        True, description="skip contacts a person is talking with when the broadcast starts"
    )


class NewBroadcast(BaseModel):
    """`POST /api/v1/broadcasts`: a segment (a view, or listed contacts) and a message."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    channel_id: str = Field(min_length=1, max_length=32)
    view_id: int | None = None
    contact_ids: list[int] | None = Field(None, min_length=1, max_length=MAX_CONTACT_IDS)
    message: BroadcastMessage
    send_at: datetime | None = Field(
        None, description="start then (without an offset: in the space's time zone)"
    )
    settings: Settings = Field(default_factory=Settings)

    @model_validator(mode="after")
    def _one_segment(self) -> NewBroadcast:
        if (self.view_id is None) == (self.contact_ids is None):
            raise ValueError("name the segment: view_id or contact_ids, one of them")
        return self


async def check(conn: AsyncConnection, space_id: int, new: NewBroadcast) -> str:
    """Refuse what the space lacks or the channel cannot send; the channel's kind."""
    kind = (
        await conn.execute(
            sa.select(channels.c.kind)
            .where(channels.c.id == new.channel_id)
            .where(channels.c.space_id == space_id)
        )
    ).scalar()
    if kind is None:
        raise NotFound(
            f"no channel {new.channel_id!r} in this space: see `chancenter channels list`"
        )
    message = new.message
    if message.template is not None and kind != "whatsapp":
        raise Unprocessable(f"message.template: templates are WhatsApp's; this is a {kind} channel")
    if message.tag is not None and kind != "messenger":
        raise Unprocessable(f"message.tag: message tags are Messenger's; this is a {kind} channel")
    if new.view_id is not None:
        found = await conn.execute(
            sa.select(views.c.id)
            .where(views.c.id == new.view_id)
            .where(views.c.space_id == space_id)
            .where(views.c.user_id.is_(None))
        )
        if found.first() is None:
            raise Unprocessable(f"view_id: no shared view {new.view_id} in this space")
    if new.contact_ids is not None:
        known = set(
            (
                await conn.execute(
                    sa.select(contacts.c.id)
                    .where(contacts.c.id.in_(new.contact_ids))
                    .where(contacts.c.space_id == space_id)
                )
            ).scalars()
        )
        if missing := sorted(set(new.contact_ids) - known):
            shown = ", ".join(map(str, missing[:5]))
            raise Unprocessable(f"contact_ids: no contact {shown} in this space")
    if message.shortcut_id is not None:
        owner = await conn.execute(
            sa.select(shortcuts.c.user_id)
            .where(shortcuts.c.id == message.shortcut_id)
            .where(shortcuts.c.space_id == space_id)
        )
        row = owner.first()
        if row is None or row.user_id is not None:
            raise Unprocessable(
                f"message.shortcut_id: no shared shortcut {message.shortcut_id} in this space"
            )
    if message.text is not None:
        keys = set(
            (
                await conn.execute(
                    sa.select(field_definitions.c.key).where(
                        field_definitions.c.space_id == space_id
                    )
                )
            ).scalars()
        )
        try:
            shortcut_ops.check(message.text, keys)
        except ValueError as exc:
            raise Unprocessable(f"message.text: {exc}") from None
    return kind


def dump(message: BroadcastMessage) -> dict[str, Any]:
    return message.model_dump(mode="json", exclude_defaults=True)
