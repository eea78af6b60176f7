"""The OAuth install of a space's Slack desk: slack-bolt's flow against the fake
`oauth.v2.access`, its state and installation kept in our database."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa
from aiohttp import ClientResponse

from bot.keys import DB, SETTINGS
from bot.storage.tables import integrations, slack_oauth_states
from integrations.slack.desks import DESKS
from integrations.slack.install import LINK_TTL, SCOPES, install_link, linked_space
from tests.conftest import count
from tests.integrations.slack.conftest import CLIENT, Desk
from tests.integrations.slack.test_workspaces import (
    BETA,
    BETA_INBOX,
    BETA_SLACK,
    beta_handed_over,
    beta_space,
)

COOKIE = "slack-app-oauth-state"


async def start(desk: Desk, auth: dict[str, str]) -> tuple[str, str]:
    """The manager's link, opened: Slack's authorize URL and the state's cookie."""
    link = await desk.hub.post("/api/v1/integrations/slack/install-link", headers=auth)
    assert link.status == 200, await link.text()
    body = await link.json()
    assert body["expires_in"] == LINK_TTL
    url = urlsplit(body["url"])
    assert f"{url.scheme}://{url.netloc}" == "https://hub.example.com"
    opened = await desk.hub.get(f"{url.path}?{url.query}", allow_redirects=False)
    assert opened.status == 302, await opened.text()
    authorize = urlsplit(opened.headers["Location"])
    query = parse_qs(authorize.query)
    assert authorize.netloc == "slack.com" and query["client_id"] == [CLIENT[0]]
    assert set(query["scope"][0].split(",")) == set(SCOPES)
    assert query["redirect_uri"] == ["https://hub.example.com/slack/oauth_redirect"]
    return query["state"][0], opened.cookies[COOKIE].value


async def finish(desk: Desk, code: str, state: str, cookie: str) -> ClientResponse:
    return await desk.hub.get(
        "/slack/oauth_redirect",
        params={"code": code, "state": state},
        headers={"Cookie": f"{COOKIE}={cookie}"},
        allow_redirects=False,
    )


async def test_a_manager_installs_the_desk_for_their_space_with_oauth(desk: Desk) -> None:
    beta = await beta_space(desk, connect=False)
    state, cookie = await start(desk, beta.auth)
    desk.slack.grant("code-1", BETA_SLACK, BETA_INBOX, CLIENT)  # approved on Slack's page
    done = await finish(desk, "code-1", state, cookie)
    page = await done.text()
    assert done.status == 200 and "installed in <b>Beta</b>" in page, page

    async with desk.app[DB].read() as conn:
        row = (
            await conn.execute(sa.select(integrations).where(integrations.c.space_id == beta.id))
        ).one()
    assert row.settings == {
        "inbox_channel": BETA_INBOX,
        "team_id": BETA.team_id,
        "team_name": "Beta",
        "app_id": BETA.app_id,
        "bot_user_id": BETA.bot_user,
        "source": "oauth",
    }
    assert BETA_SLACK not in row.credentials  # sealed
    assert desk.app[DESKS].of(beta.id) is not None
    assert await count(desk.app, slack_oauth_states) == 0  # consumed

    # the installed desk works: a handover opens its thread in the picked channel
    _, header = await beta_handed_over(desk, beta)
    assert (header.channel, header.token) == (BETA_INBOX, BETA_SLACK)

    # the state was used once: a replay of the redirect installs nothing
    desk.slack.grant("code-2", BETA_SLACK, "COTHER", CLIENT)
    again = await finish(desk, "code-2", state, cookie)
    assert again.status >= 400 and "did not complete" in await again.text()


async def test_an_install_that_slack_refuses_stores_nothing(desk: Desk) -> None:
    beta = await beta_space(desk, connect=False)
    state, cookie = await start(desk, beta.auth)
    refused = await finish(desk, "never-granted", state, cookie)
    assert refused.status >= 400 and "did not complete" in await refused.text()
    assert await count(desk.app, integrations) == 0

    state, cookie = await start(desk, beta.auth)
    stolen = await finish(desk, "code-3", state, "another-browser")  # the state's cookie differs
    assert stolen.status >= 400
    assert await count(desk.app, integrations) == 0


async def test_a_forged_or_expired_install_link_is_refused(desk: Desk) -> None:
    settings = desk.app[SETTINGS]
    expired = urlsplit(install_link(settings, 2, at=time.time() - LINK_TTL - 1))
    forged = urlsplit(install_link(settings, 2)).query.replace("space=2", "space=1")
    for query in (expired.query, forged, "space=1"):
        resp = await desk.hub.get(f"/slack/install?{query}", allow_redirects=False)
        assert resp.status == 403 and "slack-install-link" in await resp.text()
    assert linked_space(settings, parse_qs_flat(urlsplit(install_link(settings, 7)).query), 0) == 7


def parse_qs_flat(query: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(query).items()}
