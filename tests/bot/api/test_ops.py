"""Health, readiness and metrics.

Covers `bot.metrics`.
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.keys import DB
from bot.storage.tables import outbox
from tests.bot.api.test_conversations import auth, open_conversation, people  # noqa: F401
from tests.bot.pipeline.test_webhooks import body, post
from tests.channels.webchat.widget import Visitor
from tests.conftest import count, eventually
from tests.fakes.echo_channel import EchoChannel


async def test_healthz_and_readyz(client: TestClient) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["database"] == "ok"


async def test_readyz_fails_when_the_database_is_gone(client: TestClient, app: Application) -> None:
    db = app[DB]
    original = db.ping

    async def broken() -> None:
        raise ConnectionRefusedError

    db.ping = broken  # type: ignore[method-assign]
    try:
        resp = await client.get("/readyz")
    finally:
        db.ping = original  # type: ignore[method-assign]
    assert resp.status == 503
    assert "unreachable" in (await resp.json())["database"]


async def test_metrics_count_webhooks_and_messages(client: TestClient, echo: EchoChannel) -> None:
    await post(client, echo.id, body({"id": "1", "from": "u", "text": "hi"}))
    await post(client, echo.id, b"{}", "sha256=bad")
    text = await (await client.get("/metrics")).text()
    assert 'chancenter_webhooks_received_total{kind="echo",outcome="stored"} 1.0' in text
    assert 'chancenter_webhooks_received_total{kind="echo",outcome="rejected"} 1.0' in text
    assert 'chancenter_messages_total{direction="in"} 1.0' in text
    assert 'chancenter_queue_depth{queue="work"}' in text


async def test_messages_out_agree_with_usage_whoever_wrote_them(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    people: dict[str, Any],  # noqa: F811
) -> None:
    """The bot's replies, the away reply and an agent's API message all count."""
    conv = await open_conversation(client, app, echo)
    manager = auth(people["manager"])
    sent = await client.post(
        f"/api/v1/conversations/{conv}/messages", json={"text": "hello"}, headers=manager
    )
    assert sent.status == 202

    async def drained() -> bool:
        return await count(app, outbox) == 0

    await eventually(drained)
    usage = await (await client.get("/api/v1/usage", headers=manager)).json()
    out = sum(item["out"] for item in usage["items"])
    assert out == 4  # welcome, handover notice, away reply, the agent's
    text = await (await client.get("/metrics")).text()
    assert f'chancenter_messages_total{{direction="out"}} {out}.0' in text


async def test_web_chat_ingests_are_timed(
    client: TestClient, app: Application, webchat_channel: str
) -> None:
    visitor = Visitor(client, webchat_channel)
    await visitor.connect()
    await visitor.say("hi", id="m1")
    await visitor.ws.close()
    text = await (await client.get("/metrics")).text()
    assert "chancenter_ingest_seconds_count 1.0" in text
