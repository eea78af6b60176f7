"""`/api/v1/space`: the space's name, time zone and settings (business hours, away and
handover texts, the flows it runs, assignment rules, broadcast opt-out keywords)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from aiohttp import web
from pydantic import AfterValidator, BaseModel, Field, model_validator

from bot.api.auth import PRINCIPAL
from bot.api.openapi import Routes
from bot.api.params import json_body
from bot.api.roles import require
from bot.errors import InvalidPayload
from bot.keys import DB
from bot.storage.tables import spaces

HHMM = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _keyword(word: str) -> str:
    if not word.strip():
        raise ValueError("a keyword cannot be blank")
    return word.strip()


# a keyword is a whole message ("STOP", "opt out"), compared case-insensitively
Keyword = Annotated[str, Field(min_length=1, max_length=50), AfterValidator(_keyword)]
Keywords = Annotated[list[Keyword], Field(max_length=50)]


class BusinessHours(BaseModel):
    """Open from the first time to the second, per weekday, in the space's time zone;
    a day left out is closed."""

    days: dict[Day, tuple[HHMM, HHMM]]
    holidays: list[date] = Field(default_factory=list, max_length=366)


class SpaceChange(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    timezone: str | None = Field(None, max_length=64)
    business_hours: BusinessHours | None = None
    away_text: str | None = Field(None, min_length=1, max_length=1000)
    away_every_minutes: int | None = Field(None, ge=1, le=60 * 24 * 30)
    handover_text: str | None = Field(None, min_length=1, max_length=1000)
    handover_keywords: dict[str, list[str]] | None = Field(
        None, description='per language, e.g. {"en": ["agent", "human"]}'
    )
    away_flow: str | None = Field(
        None, max_length=100, description="a survey run instead of the away text"
    )
    csat_survey: str | None = Field(
        None, max_length=100, description="a survey sent when a conversation closes"
    )
    csat_bot_conversations: bool | None = Field(
        None, description="the satisfaction survey also after conversations only the bot had"
    )
    release_on_close: bool | None = Field(
        None, description="a close unassigns the contact (by default it keeps its assignee)"
    )
    assign_outside_hours: bool | None = Field(
        None, description="handovers outside business hours are assigned too"
    )
    opt_out_keywords: Keywords | None = Field(
        None,
        description="messages that unsubscribe the contact from broadcasts, instead of the "
        "built-in STOP, UNSUBSCRIBE, BAJA, SAIR...; an empty list turns them off",
    )
    opt_in_keywords: Keywords | None = Field(
        None,
        description="messages that subscribe the contact again, instead of the built-in "
        "START, SUBSCRIBE, UNSTOP, ALTA; an empty list turns them off",
    )
    opt_out_reply: str | None = Field(
        None, min_length=1, max_length=1000, description="said once when a contact opts out"
    )
    opt_in_reply: str | None = Field(
        None, min_length=1, max_length=1000, description="said once when a contact opts in"
    )

    @model_validator(mode="after")
    def _apart(self) -> SpaceChange:
        """A word in both lists could only mean one thing; say so instead of guessing."""
        out, in_ = self.opt_out_keywords or [], self.opt_in_keywords or []
        both = {w.strip().casefold() for w in out} & {w.strip().casefold() for w in in_}
        if both:
            raise ValueError(f"{sorted(both)[0]!r} is both an opt-out and an opt-in keyword")
        return self


routes = Routes()
SPACE_SETTINGS = (
    "away_text",
    "away_every_minutes",
    "handover_text",
    "handover_keywords",
    "away_flow",
    "csat_survey",
    "csat_bot_conversations",
    "release_on_close",
    "assign_outside_hours",
    "opt_out_keywords",
    "opt_in_keywords",
    "opt_out_reply",
    "opt_in_reply",
)


@routes.get("/api/v1/space", "The space's settings")
async def get_space(request: web.Request) -> web.Response:
    async with request.app[DB].read() as conn:
        row = (
            await conn.execute(sa.select(spaces).where(spaces.c.id == request[PRINCIPAL].space_id))
        ).one()
    stored = row.settings or {}
    hours = {k: stored[k] for k in ("days", "holidays") if k in stored}
    return web.json_response(
        {
            "id": row.id,
            "name": row.name,
            "timezone": row.timezone,
            "business_hours": hours or None,
            **{k: stored.get(k) for k in SPACE_SETTINGS},
        }
    )


@routes.patch(
    "/api/v1/space",
    "Change the space's name, time zone and settings; a setting sent as null "
    "is removed, one left out is unchanged (name and time zone cannot be null)",
    body=SpaceChange,
)
async def change_space(request: web.Request) -> web.Response:
    """A field left out stays as it is; a setting sent as null is removed (the space then
    uses the default: always open, the built-in texts, no survey); name and time zone stay."""
    require(request, "manager")
    change = await json_body(request, SpaceChange)
    sent = change.model_fields_set
    for kept in ("name", "timezone"):
        if kept in sent and getattr(change, kept) is None:
            raise InvalidPayload(f"{kept}: a space keeps one; send a new value instead of null")
    if change.timezone is not None:
        try:
            ZoneInfo(change.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidPayload(
                f"{change.timezone!r} is not a time zone; use a name like Europe/Lisbon"
            ) from None
    values = change.model_dump(mode="json", exclude_none=True, include={"name", "timezone"})
    settings = change.model_dump(mode="json", exclude_none=True, include=set(SPACE_SETTINGS))
    cleared = {k for k in sent & set(SPACE_SETTINGS) if getattr(change, k) is None}
    if change.business_hours is not None:
        settings.update(change.business_hours.model_dump(mode="json"))
    elif "business_hours" in sent:
        cleared |= {"days", "holidays"}
    space_id = request[PRINCIPAL].space_id
    async with request.app[DB].write() as conn:
        if settings or cleared:
            stored = (
                await conn.execute(sa.select(spaces.c.settings).where(spaces.c.id == space_id))
            ).scalar_one()
            merged = {**(stored or {}), **settings}
            values["settings"] = {k: v for k, v in merged.items() if k not in cleared}
        if values:
            await conn.execute(spaces.update().where(spaces.c.id == space_id).values(**values))
    return await get_space(request)
