"""Reports: the space's figures for a range of days as charts (Chart.js, vendored) and
tables, and as CSV; the same numbers as `GET /api/v1/reports/summary`."""

from __future__ import annotations

import csv
import io
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from bot.errors import InvalidPayload
from bot.keys import DB
from bot.workspace import reports
from dashboard.session import SPACE, VIEWER, page


def setup(app: web.Application) -> None:
    app.router.add_get("/app/{space}/reports", reports_page)
    app.router.add_get("/app/{space}/reports.csv", reports_csv)


async def _figures(request: web.Request) -> tuple[dict[str, Any], str | None]:
    space_id = request[SPACE].space_id
    query = request.query
    async with request.app[DB].read() as conn:
        tz = await reports.timezone_of(conn, space_id)
        try:
            period = reports.Period.of(
                query.get("start") or None, query.get("end") or None, tz, reports.today(tz)
            )
            error = None
        except InvalidPayload as exc:  # shown on the page, with the default range
            period, error = reports.Period.of(None, None, tz, reports.today(tz)), str(exc)
        return await reports.summary(conn, space_id, period, request.app[DB].is_sqlite), error


@page()
@aiohttp_jinja2.template("reports.html")
async def reports_page(request: web.Request) -> dict[str, Any]:
    figures, error = await _figures(request)
    chart = {
        "labels": [d["day"] for d in figures["days"]],
        "opened": [d["opened"] for d in figures["days"]],
        "closed": [d["closed"] for d in figures["days"]],
        "in": [d["in"] for d in figures["days"]],
        "out": [d["out"] for d in figures["days"]],
    }
    return {
        "viewer": request[VIEWER],
        "space": request[SPACE],
        "section": "reports",
        "r": figures,
        "chart": chart,
        "error": error,
        "query": request.query_string,
    }


@page()
async def reports_csv(request: web.Request) -> web.Response:
    figures, _ = await _figures(request)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["day", "opened", "closed", "messages_in", "messages_out"])
    for d in figures["days"]:
        writer.writerow([d["day"], d["opened"], d["closed"], d["in"], d["out"]])
    name = f"chancenter-report-{figures['start']}-{figures['end']}.csv"
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
