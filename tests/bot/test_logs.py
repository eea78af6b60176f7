"""Log lines stay one line each, whatever a client puts in a path."""

from __future__ import annotations

import logging

import pytest
from aiohttp.test_utils import TestClient

from bot.logs import LogfmtFormatter


async def test_control_characters_in_a_path_are_escaped_in_the_log(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    resp = await client.post("/webhooks/x%00%1b%5b2J%0aforged=1%e2%80%ae", data=b"{}")
    assert resp.status == 400  # a NUL never reaches a query (PostgreSQL refuses it)
    lines = [LogfmtFormatter().format(r) for r in caplog.records if hasattr(r, "path")]
    refused = [line for line in lines if "request refused" in line]
    assert refused, lines
    line = refused[0]
    assert "\n" not in line and "\x00" not in line and "\x1b" not in line
    assert "\u202e" not in line
    assert '\\u0000\\u001b[2J\\nforged=1\\u202e"' in line


def test_plain_values_stay_unquoted_and_quotes_are_escaped() -> None:
    record = logging.makeLogRecord(
        {"msg": "sent", "levelname": "INFO", "channel": "tg-1", "why": 'say "hi"', "empty": ""}
    )
    line = LogfmtFormatter().format(record)
    assert " channel=tg-1 " in line
    assert ' why="say \\"hi\\""' in line
    assert ' empty=""' in line
