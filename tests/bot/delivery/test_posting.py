"""One POST of a delivery (bot.delivery.posting): how long a receiver asks us to wait."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from bot.delivery.posting import Attempt, seconds

AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 7 ", 7.0),
        (format_datetime(datetime(2026, 12, 6, 12, 1, 30, tzinfo=UTC), usegmt=True), 90.0),
        (format_datetime(datetime(2026, 12, 6, 11, 0, tzinfo=UTC), usegmt=True), 0.0),  # past
        ("999999999", 86400.0),  # never more than a day
        ("soon", None),
        ("-5", None),
    ],
)
def test_retry_after_is_seconds_or_a_date(header: str | None, wait: float | None) -> None:
    assert seconds(header, AT) == wait


@pytest.mark.parametrize(
    ("status", "delivered", "retried", "reason"),
    [
        (204, True, False, "answered 204"),
        (500, False, True, "answered 500"),
        (408, False, True, "answered 408"),
        (429, False, True, "answered 429"),
        (410, False, False, "answered 410"),
        (302, False, False, "answered 302"),
        (None, False, True, "refused: 10.0.0.1 is private"),
    ],
)
def test_what_an_answer_means(
    status: int | None, delivered: bool, retried: bool, reason: str
) -> None:
    error = reason if status is None else None
    attempt = Attempt(None, status, 1.0, error)
    assert (attempt.delivered, attempt.delivered or attempt.retried) == (
        delivered,
        delivered or retried,
    )
    assert attempt.reason == reason
