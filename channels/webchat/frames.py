"""What the widget may send over the websocket, validated before anything is stored.

A frame comes from an anonymous browser: it is parsed with `bot.pipeline.untrusted.loads`
(bounded depth, never a crash), every number is range-checked against what the
database can hold, and every string is cleaned into storable text.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from bot.errors import InvalidPayload
from bot.pipeline.untrusted import clean_text, loads

MAX_TEXT = 4096
MAX_ID = 2**63 - 1
"""Largest message id: a BIGINT. A larger one used to reach the group commit and fail
it (OverflowError) for every visitor whose frame shared that commit."""

Text = Annotated[str, AfterValidator(clean_text)]
ClientId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
MessageId = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]


_TAG = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*")
_LEADING = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|[0-9]{3}))?(?=-|\Z)")


def _language(tag: str | None) -> str | None:
    """`de-DE-u-co-phonebk` -> `de-DE` (16 characters fit the column); not a tag -> None."""
    if tag is None or _TAG.fullmatch(tag) is None:
        return None
    if len(tag) <= 16:
        return tag
    leading = _LEADING.match(tag)
    return leading.group(0) if leading else None


class _Frame(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Hello(_Frame):
    """First frame: the stored session token (or none) and the browser's language."""

    type: Literal["hello"]
    # any string: one that proves no session (stale, corrupted) just starts a new one
    token: Text | None = Field(None, max_length=200)
    # navigator.language: a tag the contact's language column cannot hold is cut to its
    # language and region, and one that is no tag at all is dropped (never the session)
    language: Annotated[str, Field(max_length=100)] | None = None

    @field_validator("language")
    @classmethod
    def _known_language(cls, tag: str | None) -> str | None:
        return _language(tag)


class Attachment(_Frame):
    file_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class SendMessage(_Frame):
    """`id` is the widget's own id for the message: resending it after a reconnect is a no-op."""

    type: Literal["message"]
    id: ClientId
    text: Text = Field("", max_length=MAX_TEXT)
    attachments: tuple[Attachment, ...] = Field((), max_length=10)


class SendPostback(_Frame):
    type: Literal["postback"]
    id: ClientId
    payload: Text = Field(min_length=1, max_length=1000)
    title: Text | None = Field(None, max_length=200)


class Typing(_Frame):
    type: Literal["typing"]


class Receipt(_Frame):
    """The visitor's browser got (`delivered`) or showed (`read`) one of our messages."""

    type: Literal["receipt"]
    message_id: MessageId
    status: Literal["delivered", "read"]


ClientFrame = Annotated[
    Hello | SendMessage | SendPostback | Typing | Receipt, Field(discriminator="type")
]
client_frame: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)


def parse_frame(data: str) -> ClientFrame:
    """The frame `data` carries, or `InvalidPayload` saying briefly what is wrong with it."""
    value = loads(data, "frame")
    if not isinstance(value, dict):
        raise InvalidPayload('a frame is a JSON object with a "type"')
    try:
        return client_frame.validate_python(value)
    except ValidationError as exc:
        raise InvalidPayload(_explain(exc)) from None


def _explain(exc: ValidationError) -> str:
    """The first problem, naming the field but never echoing the visitor's input."""
    err = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "frame"
    return f"{where}: {err['msg']}"[:200]
