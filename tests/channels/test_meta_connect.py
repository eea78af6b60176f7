"""Adding a Messenger or WhatsApp channel checks its credentials at the Graph API first
(issue #14): a wrong token or id is refused with Meta's reason and nothing is stored."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.errors import ConfigError
from bot.keys import DEFAULT_SPACE
from bot.settings import Settings
from bot.workspace.channel_admin import add_channel, list_channels
from handlers.admin import channel_command
from tests.channels.conftest import APP_SECRET, VERIFY_TOKEN
from tests.conftest import closed_within
from tests.fakes.graph import FakeGraph

META = {"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN}
PAGE = {**META, "page_id": "1001", "page_token": "PAGE-TOKEN"}
NUMBER = {**META, "phone_number_id": "3003", "access_token": "WA-TOKEN"}


async def add(hub: TestClient, kind: str, given: dict[str, str]) -> Any:
    app = hub.server.app
    return await add_channel(app, app[DEFAULT_SPACE], kind, given)


async def kinds(hub: TestClient) -> list[str]:
    app = hub.server.app
    return [c.kind for c in await list_channels(app, app[DEFAULT_SPACE])]


# --- Messenger ----------------------------------------------------------------------


async def test_messenger_checks_the_page_token_is_the_pages_and_takes_its_name(
    meta_hub: TestClient, graph: FakeGraph
) -> None:
    info = await add(meta_hub, "messenger", PAGE)
    assert info.name == "Acme Support"
    assert graph.reads == [("/me", {"fields": "id,name"})]  # the token in a header only


async def test_messenger_refuses_a_bad_token_with_metas_reason(
    meta_hub: TestClient, graph: FakeGraph
) -> None:
    with pytest.raises(ConfigError) as refused:
        await add(meta_hub, "messenger", {**PAGE, "page_token": "EXPIRED"})
    text = str(refused.value)
    assert "190" in text and "Invalid OAuth access token" in text
    assert "--page-token" in text and "nothing was stored" in text
    assert await kinds(meta_hub) == ["webchat"]


async def test_messenger_refuses_another_pages_token_naming_whose_it_is(
    meta_hub: TestClient, graph: FakeGraph
) -> None:
    graph.pages["2002"] = {"id": "2002", "name": "Other Shop", "token": "OTHER-TOKEN"}
    graph.tokens.add("OTHER-TOKEN")
    with pytest.raises(ConfigError, match=r"Other Shop \(2002\), not page 1001"):
        await add(meta_hub, "messenger", {**PAGE, "page_token": "OTHER-TOKEN"})
    # a user's or system user's token is not a page's either
    with pytest.raises(ConfigError, match="not page 1001"):
        await add(meta_hub, "messenger", {**PAGE, "page_token": "WA-TOKEN"})
    assert await kinds(meta_hub) == ["webchat"]


async def test_metas_text_never_carries_the_token_back(
    meta_hub: TestClient, graph: FakeGraph
) -> None:
    graph.fail(400, 190, "Malformed access token EAAB-SECRET-token", read=True)
    with pytest.raises(ConfigError) as refused:
        await add(meta_hub, "messenger", {**PAGE, "page_token": "EAAB-SECRET-token"})
    assert "190: Malformed access token <the token>" in str(refused.value)
    assert "SECRET" not in str(refused.value)


async def test_an_id_that_is_not_digits_is_refused_before_any_call(
    meta_hub: TestClient, graph: FakeGraph
) -> None:
    with pytest.raises(ConfigError, match="--page-id is the page's id"):
        await add(meta_hub, "messenger", {**PAGE, "page_id": "../me"})
    with pytest.raises(ConfigError, match="--phone-number-id is the number's id"):
        await add(meta_hub, "whatsapp", {**NUMBER, "phone_number_id": "+1 555-010-3003"})
    assert graph.reads == [] and await kinds(meta_hub) == ["webchat"]


async def test_missing_flags_are_refused_before_any_call(
    meta_hub: TestClient, graph: FakeGraph
) -> None:
    with pytest.raises(ConfigError, match="needs --page-token"):
        await add(meta_hub, "messenger", {**META, "page_id": "1001"})
    with pytest.raises(ConfigError, match="needs --access-token"):
        await add(meta_hub, "whatsapp", {**META, "phone_number_id": "3003"})
    assert graph.reads == []


# --- WhatsApp -----------------------------------------------------------------------


async def test_whatsapp_reads_the_number_and_takes_its_verified_name(
    meta_hub: TestClient, graph: FakeGraph
) -> None:
    info = await add(meta_hub, "whatsapp", NUMBER)
    assert info.name == "Acme Support (+1 555-010-3003)"
    assert graph.reads == [("/3003", {"fields": "id,display_phone_number,verified_name"})]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"phone_number_id": "9999"}, r"100: Unsupported get request. Object with ID '9999'"),
        ({"access_token": "REVOKED"}, r"190: Invalid OAuth access token"),
    ],
)
async def test_whatsapp_refuses_a_wrong_number_or_token_with_metas_reason(
    meta_hub: TestClient, given: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected) as refused:
        await add(meta_hub, "whatsapp", {**NUMBER, **given})
    flag = "--phone-number-id" if "phone_number_id" in given else "--access-token"
    assert flag in str(refused.value) and "nothing was stored" in str(refused.value)
    assert await kinds(meta_hub) == ["webchat"]


async def test_whatsapp_refuses_a_token_of_another_business_account(
    meta_hub: TestClient, graph: FakeGraph
) -> None:
    graph.tokens.add("OTHER-WABA-TOKEN")
    with pytest.raises(ConfigError, match="Object with ID '3003'"):
        await add(meta_hub, "whatsapp", {**NUMBER, "access_token": "OTHER-WABA-TOKEN"})
    assert await kinds(meta_hub) == ["webchat"]


# --- Graph outages and the base URL ------------------------------------------------


def _outage(graph: FakeGraph, how: str) -> None:
    if how == "500":
        graph.fail(
            500, 2, "An unexpected error has occurred. Please retry your request later.", read=True
        )
    elif how == "unavailable":
        graph.fail(400, 1, "An unknown error has occurred.", read=True)
    elif how == "throttled":
        graph.fail(400, 4, "(#4) Application request limit reached", read=True)
    elif how == "proxy":
        graph.fail_raw(502, "<html><body>Bad Gateway</body></html>", read=True)
    else:
        graph.stall = 2.0


@pytest.mark.parametrize("kind", ["messenger", "whatsapp"])
@pytest.mark.parametrize("how", ["500", "unavailable", "throttled", "proxy", "timeout"])
async def test_a_graph_outage_says_try_again_and_stores_nothing(
    meta_hub: TestClient, graph: FakeGraph, monkeypatch: pytest.MonkeyPatch, kind: str, how: str
) -> None:
    monkeypatch.setattr("channels.meta.CHECK_TIMEOUT", 0.3)
    _outage(graph, how)
    with pytest.raises(ConfigError, match="try again") as refused:
        await add(meta_hub, kind, PAGE if kind == "messenger" else NUMBER)
    assert "nothing was stored" in str(refused.value)
    assert await kinds(meta_hub) == ["webchat"]
    graph.stall = 0.0
    assert (await add(meta_hub, kind, PAGE if kind == "messenger" else NUMBER)).name


async def test_an_answer_that_is_not_metas_names_the_base_url_setting(
    meta_hub: TestClient, graph: FakeGraph
) -> None:
    graph.fail_raw(200, "<html>a captive portal</html>", read=True)
    with pytest.raises(ConfigError, match="CHANCENTER_GRAPH_API_BASE"):
        await add(meta_hub, "whatsapp", NUMBER)
    graph.fail_raw(404, "<html>Not Found</html>", read=True)
    with pytest.raises(ConfigError, match="CHANCENTER_GRAPH_API_BASE"):
        await add(meta_hub, "messenger", PAGE)
    assert await kinds(meta_hub) == ["webchat"]


async def test_the_check_uses_the_configured_graph_base_with_its_version(
    aiohttp_client: Any, settings: Settings, graph: FakeGraph
) -> None:
    base = f"{graph.url}/v21.0"
    hub = await aiohttp_client(create_app(settings.model_copy(update={"graph_api_base": base})))
    try:
        await add(hub, "messenger", PAGE)
        await add(hub, "whatsapp", NUMBER)
    finally:
        await closed_within(hub, 15)
    assert [path for path, _ in graph.reads] == ["/v21.0/me", "/v21.0/3003"]


# --- the chat command and the CLI go through the same check --------------------------


async def test_chat_command_answers_with_metas_reason_or_the_checked_name(
    meta_hub: TestClient,
) -> None:
    app = meta_hub.server.app
    args = f"app_secret={APP_SECRET} verify_token={VERIFY_TOKEN}"
    wrong = await channel_command(
        app,
        app[DEFAULT_SPACE],
        f"/channel add whatsapp phone_number_id=3003 access_token=NOPE {args}",
    )
    assert "190: Invalid OAuth access token" in wrong and "Connected" not in wrong
    assert await kinds(meta_hub) == ["webchat"]
    right = await channel_command(
        app, app[DEFAULT_SPACE], f"/channel add messenger page_id=1001 page_token=PAGE-TOKEN {args}"
    )
    assert right.startswith("Connected messenger Acme Support as ")


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_channels_add_checks_at_the_graph_base_from_the_environment(
    graph: FakeGraph, tmp_path: Path
) -> None:
    env = {
        "CHANCENTER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        "CHANCENTER_DATA_DIR": str(tmp_path),
        "CHANCENTER_GRAPH_API_BASE": f"{graph.url}/v21.0",
    }
    assert (await _cli("db", "upgrade", env=env))[0] == 0
    flags = ["--app-secret", "s", "--verify-token", "v", "--phone-number-id", "3003"]
    code, out, err = await _cli(
        "channels", "add", "whatsapp", *flags, "--access-token", "WRONG", env=env
    )
    assert code == 2 and "190: Invalid OAuth access token" in err and "WRONG" not in err
    code, out, err = await _cli(
        "channels", "add", "whatsapp", *flags, "--access-token", "WA-TOKEN", env=env
    )
    assert code == 0, err
    code, out, _ = await _cli("channels", "list", env=env)
    assert out.count("\twhatsapp\t") == 1 and "Acme Support (+1 555-010-3003)" in out
    assert [path for path, _ in graph.reads] == ["/v21.0/3003", "/v21.0/3003"]
