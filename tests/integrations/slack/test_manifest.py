"""The Slack app manifest asks for what the desk uses, at the URL the hub serves."""

from __future__ import annotations

from pathlib import Path

import yaml
from aiohttp.test_utils import TestClient

import integrations.slack
from integrations.slack.install import SCOPES
from tests.fakes.slack import signed
from tests.integrations.slack.conftest import Desk

MANIFEST = Path(integrations.slack.__file__).parent / "manifest.yml"


def test_manifest_matches_the_desk() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/chancenter" and command["should_escape"] is True
    urls = {
        command["url"],
        manifest["settings"]["event_subscriptions"]["request_url"],
        manifest["settings"]["interactivity"]["request_url"],
    }
    assert urls == {"https://hub.example.com/slack/events"}
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {
        "chat:write",
        "users:read",
        "users:read.email",
        "commands",
        "channels:history",
    } <= scopes
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert {"message.channels", "app_uninstalled", "tokens_revoked"} <= set(events)
    assert scopes == set(SCOPES)  # what the OAuth install asks for
    assert manifest["oauth_config"]["redirect_urls"] == [
        "https://hub.example.com/slack/oauth_redirect"
    ]


async def test_without_slack_settings_the_endpoint_says_what_to_set(client: TestClient) -> None:
    resp = await client.post("/slack/events", data="{}")
    assert resp.status == 404
    assert "CHANCENTER_SLACK_BOT_TOKEN" in (await resp.json())["detail"]


async def test_a_request_not_signed_by_slack_is_refused(desk: Desk) -> None:
    body = '{"type": "event_callback", "event": {"type": "message"}}'
    headers = signed("not-the-secret", body, "application/json")
    assert (await desk.hub.post("/slack/events", data=body, headers=headers)).status == 401
    assert [call for call in desk.slack.calls if call != "auth.test"] == []  # nothing acted on
