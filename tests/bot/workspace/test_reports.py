"""A space's figures (`bot.workspace.reports`, served by `bot.api.reports`): days cut at the
space's midnights across a clock change, percentiles by rank, handovers and bot-only
resolutions, CSAT from the satisfaction survey, messages per channel, agent and team."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.api.auth import create_token
from bot.errors import InvalidPayload
from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import (
    assignments,
    contacts,
    conversations,
    flow_runs,
    identities,
    messages,
    spaces,
    surveys,
    teams,
)
from bot.workspace.bootstrap import user_by_email
from bot.workspace.report_days import midnight
from bot.workspace.reports import Period, summary
from tests.conftest import add_channel

LISBON = ZoneInfo("Europe/Lisbon")  # clocks go forward on 2026-03-29 (a 23-hour day)


def at(day: str, hour: int, minute: int = 0) -> datetime:
    """Lisbon's wall clock, as the hub stores every time: in UTC."""
    local = datetime.fromisoformat(f"{day}T{hour:02d}:{minute:02d}").replace(tzinfo=LISBON)
    return local.astimezone(UTC)


async def story(app: Application) -> dict[str, Any]:
    """Four conversations on one channel: answered by a person, bot-only, handed over to a
    team, and one outside the range."""
    space_id = app[DEFAULT_SPACE]
    channel_id = await add_channel(app, "echo")
    async with app[DB].write() as conn:
        await conn.execute(
            spaces.update()
            .where(spaces.c.id == space_id)
            .values(timezone="Europe/Lisbon", settings={"csat_survey": "csat"})
        )
        bea = await user_by_email(conn, "Bea", "bea@example.com")
        team = (
            await conn.execute(
                teams.insert().values(space_id=space_id, name="Sales").returning(teams.c.id)
            )
        ).scalar_one()
        survey = (
            await conn.execute(
                surveys.insert()
                .values(
                    space_id=space_id,
                    name="csat",
                    definition={
                        "steps": [
                            {"id": "hi", "type": "message", "text": "Hi"},
                            {"id": "score", "type": "question", "answer": "rating"},
                        ]
                    },
                )
                .returning(surveys.c.id)
            )
        ).scalar_one()
        made = []
        # as the hub records them: when people first took part, and first wrote
        for n, (opened, closed, team_id, handed, replied) in enumerate(
            [
                (  # a person answered in 60 s
                    at("2026-03-28", 23, 30),
                    at("2026-03-29", 0, 30),
                    None,
                    at("2026-03-28", 23, 31),
                    at("2026-03-28", 23, 31),
                ),
                (at("2026-03-29", 0, 10), at("2026-03-29", 23, 50), None, None, None),  # bot only
                (at("2026-03-29", 10), None, team, at("2026-03-29", 10), None),  # to Sales, open
                (at("2026-03-25", 10), None, None, None, None),  # before the range
            ]
        ):
            contact = (
                await conn.execute(
                    contacts.insert()
                    .values(space_id=space_id, name=f"c{n}")
                    .returning(contacts.c.id)
                )
            ).scalar_one()
            identity = (
                await conn.execute(
                    identities.insert()
                    .values(contact_id=contact, channel_id=channel_id, external_id=f"u{n}")
                    .returning(identities.c.id)
                )
            ).scalar_one()
            made.append(
                (
                    await conn.execute(
                        conversations.insert()
                        .values(
                            space_id=space_id,
                            contact_id=contact,
                            channel_id=channel_id,
                            identity_id=identity,
                            created_at=opened,
                            closed_at=closed,
                            status="closed" if closed else "open",
                            team_id=team_id,
                            handler="waiting" if team_id else "bot",
                            handed_over_at=handed,
                            first_reply_at=replied,
                        )
                        .returning(conversations.c.id)
                    )
                ).scalar_one()
            )
        person, bot_only, handed, _ = made

        def message(
            conversation: int, when: datetime, direction: str, **more: Any
        ) -> dict[str, Any]:
            return {
                "space_id": space_id,
                "conversation_id": conversation,
                "channel_id": channel_id,
                "direction": direction,
                "parts": [{"type": "text", "text": "x"}],
                "status": "received" if direction == "in" else "sent",
                "created_at": when,
                "sender_type": more.pop("sender_type", "contact" if direction == "in" else "bot"),
                "sender_user_id": more.pop("sender_user_id", None),  # every row the same keys
            }

        await conn.execute(
            messages.insert(),
            [
                message(person, at("2026-03-28", 23, 30), "in"),
                message(
                    person, at("2026-03-28", 23, 31), "out", sender_type="user", sender_user_id=bea
                ),
                message(bot_only, at("2026-03-29", 0, 10), "in"),
                message(bot_only, at("2026-03-29", 0, 11), "out"),
                message(handed, at("2026-03-29", 10), "in"),
                message(handed, at("2026-03-29", 10, 5), "note", sender_type="user"),
            ],
        )
        await conn.execute(assignments.insert().values(conversation_id=handed, user_id=None))
        for score in (5, 3):
            await conn.execute(
                flow_runs.insert().values(
                    survey_id=survey,
                    space_id=space_id,
                    conversation_id=person,
                    contact_id=1,
                    status="finished",
                    answers={"score": score},
                    finished_at=at("2026-03-29", 1),
                )
            )
    return {"bea": bea, "channel_id": channel_id, "team": team}


async def test_a_weekend_across_the_clock_change(app: Application) -> None:
    made = await story(app)
    period = Period(date(2026, 3, 28), date(2026, 3, 29), LISBON)
    assert [
        midnight(d + timedelta(days=1), LISBON) - midnight(d, LISBON) for d in period.dates()
    ] == [
        timedelta(hours=24),
        timedelta(hours=23),
    ]
    async with app[DB].read() as conn:
        found = await summary(conn, app[DEFAULT_SPACE], period, app[DB].is_sqlite)
    assert found["days"] == [
        {"day": "2026-03-28", "opened": 1, "closed": 0, "in": 1, "out": 1},
        {"day": "2026-03-29", "opened": 2, "closed": 2, "in": 2, "out": 1},
    ]
    assert found["first_response_seconds"] == {"count": 1, "median": 60.0, "p90": 60.0}
    resolution = found["resolution_seconds"]
    assert resolution["count"] == 2
    assert resolution["median"] == 3600.0  # 1 h; the other took 23 h 40 min less the lost hour
    assert resolution["p90"] == pytest.approx((23 * 60 + 40 - 60) * 60, abs=1)
    assert found["handovers"] == 2  # a person wrote in one; the other was handed to a team
    assert found["bot_only_resolutions"] == 1
    assert found["csat"] == {"survey": "csat", "average": 4.0, "count": 2}
    assert found["by_channel"] == [
        {"channel_id": made["channel_id"], "name": "echo", "kind": "echo", "in": 3, "out": 2}
    ]
    assert found["by_agent"] == [
        {"user_id": made["bea"], "name": "Bea", "messages_out": 1, "conversations": 1}
    ]
    assert found["by_team"] == [{"team_id": made["team"], "name": "Sales", "conversations": 1}]


async def test_the_api_answers_the_same_and_refuses_bad_ranges(
    client: TestClient, app: Application
) -> None:
    await story(app)
    async with app[DB].write() as conn:
        token = await create_token(conn, app[DEFAULT_SPACE], None, "reports", "agent")
    headers = {"Authorization": f"Bearer {token}"}
    resp = await client.get(
        "/api/v1/reports/summary?start=2026-03-28&end=2026-03-29", headers=headers
    )
    body = await resp.json()
    assert resp.status == 200 and body["timezone"] == "Europe/Lisbon"
    assert [d["opened"] for d in body["days"]] == [1, 2]
    bad = await client.get(
        "/api/v1/reports/summary?start=2026-03-30&end=2026-03-29", headers=headers
    )
    assert bad.status == 400
    with pytest.raises(InvalidPayload, match="at most 400"):
        Period.of("2020-01-01", "2026-01-01", "UTC", date(2026, 1, 1))
    default = Period.of(None, None, "UTC", date(2026, 1, 31))
    assert (default.start, default.end) == (date(2026, 1, 2), date(2026, 1, 31))
    assert datetime(2026, 1, 2, tzinfo=UTC) == default.bounds[0]
