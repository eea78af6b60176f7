"""`/api/v1/reports/summary`: a space's figures for a range of days in its time zone, the
numbers the dashboard's Reports page charts (`bot.workspace.reports`)."""

from __future__ import annotations

from aiohttp import web

from bot.api.auth import PRINCIPAL
from bot.api.openapi import Routes, query_param
from bot.api.params import known_query
from bot.keys import DB
from bot.workspace import reports

DAY = {"type": "string", "format": "date", "description": "YYYY-MM-DD, in the space's time zone"}
SPREAD = {
    "type": "object",
    "properties": {
        "count": {"type": "integer"},
        "median": {"type": ["number", "null"]},
        "p90": {"type": ["number", "null"]},
    },
}
SUMMARY = {
    "type": "object",
    "properties": {
        "start": DAY,
        "end": DAY,
        "timezone": {"type": "string"},
        "days": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "day": DAY,
                    "opened": {"type": "integer"},
                    "closed": {"type": "integer"},
                    "in": {"type": "integer", "description": "messages from contacts"},
                    "out": {"type": "integer", "description": "messages to contacts"},
                },
            },
        },
        "first_response_seconds": SPREAD,
        "resolution_seconds": SPREAD,
        "handovers": {"type": "integer", "description": "opened, and a person took part"},
        "bot_only_resolutions": {"type": "integer", "description": "closed with no person"},
        "csat": {
            "type": "object",
            "properties": {
                "survey": {"type": ["string", "null"]},
                "average": {"type": ["number", "null"]},
                "count": {"type": "integer"},
            },
        },
        "by_channel": {"type": "array", "items": {"type": "object"}},
        "by_agent": {"type": "array", "items": {"type": "object"}},
        "by_team": {"type": "array", "items": {"type": "object"}},
    },
}
routes = Routes()


@routes.get(
    "/api/v1/reports/summary",
    "The space's figures per day and in total for a range of days (its time zone)",
    SUMMARY,
    query=(
        query_param("start", "the first day (default: 29 days before end)", type="string"),
        query_param("end", "the last day, included (default: today)", type="string"),
    ),
)
async def summary(request: web.Request) -> web.Response:
    """Conversations opened and closed and messages in and out per day; first response
    and resolution times (median, p90); handovers, bot-only resolutions, CSAT; messages
    per channel, agent and team. At most 400 days."""
    known_query(request, "start", "end")
    space_id = request[PRINCIPAL].space_id
    async with request.app[DB].read() as conn:
        tz = await reports.timezone_of(conn, space_id)
        query = request.query
        period = reports.Period.of(query.get("start"), query.get("end"), tz, reports.today(tz))
        found = await reports.summary(conn, space_id, period, request.app[DB].is_sqlite)
    return web.json_response(found)
