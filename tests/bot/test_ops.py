"""Health, readiness and metrics."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.keys import DB
from tests.bot.test_webhooks import body, post
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
