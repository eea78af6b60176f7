"""An automation as written in YAML or JSON, validated with errors naming the path.

name: pricing-lead
trigger: {on: message_received}
conditions: {all: [{field: message.text, op: contains, value: price}]}
actions:
  - tag: lead
  - send_message: "Hi {{contact.first_name}}, our price list is on its way."
  - assign: {team: Sales}

What a definition names in the space (fields, teams, users, surveys, shortcuts,
views) is checked against the database by `automations.references`.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from croniter import CroniterBadDateError, croniter
from pydantic import Field, ValidationError, field_validator, model_validator

from bot.errors import InvalidPayload
from bot.model import Frozen
from bot.pipeline.untrusted import load_yaml, plain
from bot.workspace.filters import Group
from bot.workspace.triggers import parse_duration

KEY = r"^[a-z][a-z0-9_]{0,63}$"
AT = r"^([01]\d|2[0-3]):[0-5]\d$"
Duration = Annotated[str, Field(examples=["2h"], max_length=12)]


def _duration(value: str) -> str:
    try:
        parse_duration(value)
    except InvalidPayload as exc:
        raise ValueError(str(exc)) from None
    return value


class OnMessage(Frozen):
    on: Literal[
        "message_received",
        "conversation_opened",
        "conversation_closed",
        "conversation_assigned",
        "handed_over",
        "contact_created",
    ]


class OnTag(Frozen):
    on: Literal["tag_added", "tag_removed"]
    tag: str | None = Field(None, min_length=1, max_length=100, description="any tag if unset")


class OnField(Frozen):
    on: Literal["field_changed"]
    field: str = Field(pattern=KEY, description="a custom field key")


class OnSurvey(Frozen):
    on: Literal["survey_completed"]
    survey: str | None = Field(None, description="a survey's name; any survey if unset")


class OnNoReply(Frozen):
    """`from: contact`: we wrote last and the contact has not answered for `after`;
    `from: agent`: the contact wrote last and no person has answered for `after`."""

    on: Literal["no_reply"]
    from_: Literal["contact", "agent"] = Field("contact", alias="from")
    after: Duration

    _after = field_validator("after")(_duration)


class OnDate(Frozen):
    """At `at` (the space's time zone) on the day `offset` away from the field's date."""

    on: Literal["date_field"]
    field: str = Field(pattern=KEY, description="a custom field of type date")
    offset: str = "0d"
    at: str = Field("09:00", pattern=AT)

    @field_validator("offset")
    @classmethod
    def _offset(cls, value: str) -> str:
        try:
            delta = parse_duration(value, signed=True)
        except InvalidPayload as exc:
            raise ValueError(str(exc)) from None
        if delta.seconds or delta.microseconds:
            raise ValueError("an offset is whole days or weeks, like -3d or 1w")
        return value


class OnSchedule(Frozen):
    """Every time `cron` comes round (the space's time zone), for the view's contacts."""

    on: Literal["schedule"]
    cron: str = Field(examples=["0 9 * * mon"], max_length=100)
    view_id: int = Field(ge=1)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron line like '0 9 * * mon'")
        try:  # valid, yet never: "0 0 30 2 *"
            croniter(value, datetime(2026, 1, 1)).get_next(datetime)
        except (CroniterBadDateError, ValueError):
            raise ValueError(f"{value!r} never comes round") from None
        return value


Trigger = Annotated[
    OnMessage | OnTag | OnField | OnSurvey | OnNoReply | OnDate | OnSchedule,
    Field(discriminator="on"),
]
TRIGGERS = sorted(
    name
    for model in (OnMessage, OnTag, OnField, OnSurvey, OnNoReply, OnDate, OnSchedule)
    for name in model.model_fields["on"].annotation.__args__  # type: ignore[union-attr]
)


class SendMessage(Frozen):
    shortcut: str = Field(min_length=1, max_length=100)


class Assign(Frozen):
    user: str | None = Field(None, description="a member's email")
    team: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Assign:
        if (self.user is None) == (self.team is None):
            raise ValueError("assign names exactly one of user (an email) or team")
        return self


class HandOver(Frozen):
    team: str | None = None
    note: str | None = Field(None, max_length=1000)


class AutomationBranch(Frozen):
    when: Group = Field(alias="if")
    then: list[AutomationAction] = Field(default_factory=list, max_length=50)
    else_: list[AutomationAction] = Field(default_factory=list, alias="else", max_length=50)


class AutomationAction(Frozen):
    """One action; exactly one key is set. (Named apart from a survey's end action: the
    OpenAPI document holds both.)"""

    send_message: Annotated[str, Field(max_length=4000)] | SendMessage | None = None
    assign: Assign | None = None
    unassign: Literal[True] | None = None
    tag: str | None = Field(None, min_length=1, max_length=100)
    untag: str | None = Field(None, min_length=1, max_length=100)
    set_field: dict[str, Any] | None = Field(None, min_length=1, max_length=1)
    start_survey: str | None = Field(None, min_length=1, max_length=100)
    hand_over: Union[Literal[True], HandOver, None] = None  # noqa: UP007
    back_to_bot: Literal[True] | None = None
    close: Literal[True] | None = None
    note: str | None = Field(None, min_length=1, max_length=3000)
    webhook: str | None = Field(None, pattern=r"^https?://", max_length=2000)
    wait: Duration | None = None
    branch: AutomationBranch | None = None

    @model_validator(mode="after")
    def _one(self) -> AutomationAction:
        if len(self.model_dump(exclude_none=True)) != 1:
            raise ValueError(f"an action is exactly one of {', '.join(ACTIONS)}")
        if self.wait is not None:
            _duration(self.wait)
        if isinstance(self.send_message, str) and not self.send_message.strip():
            raise ValueError("send_message needs a text, or {shortcut: NAME}")
        if self.set_field is not None and not re.match(KEY, next(iter(self.set_field))):
            raise ValueError("set_field is {key: value} with a custom field's key")
        return self

    @property
    def kind(self) -> str:
        return next(iter(self.model_dump(exclude_none=True)))


ACTIONS = [name for name in AutomationAction.model_fields]


AutomationBranch.model_rebuild()


class Automation(Frozen):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=1000)
    trigger: Trigger
    conditions: Group | None = None
    actions: list[AutomationAction] = Field(min_length=1, max_length=50)
    enabled: bool = True
    once_per_contact: bool = False
    active_hours: bool = Field(False, description="run only within the space's business hours")


def parse_automation(source: str | bytes | dict[str, Any]) -> Automation:
    """YAML or JSON text (or already parsed) to an `Automation`, or one clear error."""
    data: Any = source
    if isinstance(source, bytes):
        source = source.decode("utf-8", "replace")
    if isinstance(source, str):
        data = plain(load_yaml(source, "the automation"))
    if not isinstance(data, dict):
        raise InvalidPayload("an automation is a mapping with name, trigger and actions")
    try:
        return Automation.model_validate(data)
    except ValidationError as exc:
        raise InvalidPayload(_where(exc)) from None


def _where(exc: ValidationError) -> str:
    """`actions[1].assign: assign names exactly one of ...`: the path as it is written."""
    err = max(exc.errors(), key=lambda e: len(e["loc"]))
    path = ""
    for part in err["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not _union_tag(str(part)):
            path += f".{part}" if path else str(part)
    message = re.sub(r"^Value error, ", "", err["msg"])
    return f"{path or 'automation'}: {message}"


def _union_tag(part: str) -> bool:
    """Pydantic names the union member it tried (`str`, `SendMessage`, a trigger's `on`)."""
    return (
        part in ("str", "bool", "literal[True]")
        or part[:1].isupper()
        or "[" in part
        or (part in TRIGGERS)
    )


def dump(automation: Automation) -> dict[str, Any]:
    return json.loads(automation.model_dump_json(by_alias=True, exclude_none=True))
