"""What the widget may send over the websocket, validated before anything is stored."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

MAX_TEXT = 4096
ClientId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class _Frame(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Hello(_Frame):
    """First frame: the stored session token (or none) and the browser's language."""

    type: Literal["hello"]
    token: str | None = Field(None, max_length=200)
    language: str | None = Field(None, max_length=16)


class Attachment(_Frame):
    file_id: str = Field(min_length=1, max_length=64)


class SendMessage(_Frame):
    """`id` is the widget's own id for the message: resending it after a reconnect is a no-op."""

    type: Literal["message"]
    id: ClientId
    text: str = Field("", max_length=MAX_TEXT)
    attachments: tuple[Attachment, ...] = Field((), max_length=10)


class SendPostback(_Frame):
    type: Literal["postback"]
    id: ClientId
    payload: str = Field(min_length=1, max_length=1000)
    title: str | None = Field(None, max_length=200)


class Typing(_Frame):
    type: Literal["typing"]


class Receipt(_Frame):
    """The visitor's browser got (`delivered`) or showed (`read`) one of our messages."""

    type: Literal["receipt"]
    message_id: int
    status: Literal["delivered", "read"]


ClientFrame = Annotated[
    Hello | SendMessage | SendPostback | Typing | Receipt, Field(discriminator="type")
]
client_frame: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
