"""Where outgoing webhooks may go (bot.delivery.guard): link-local and cloud metadata
addresses never, loopback and private ones only when allowed, checked when a subscription
is made (422) and again at every delivery, through the resolver the relay connects with."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.api.auth import create_token
from bot.clock import now
from bot.delivery.guard import GuardedResolver, Refused, check_target, refusal
from bot.delivery.webhooks import sealed_secret
from bot.keys import DB, DEFAULT_SPACE, SETTINGS, TOPICS, WEBHOOKS
from bot.settings import Settings
from bot.storage.tables import webhook_deliveries, webhooks
from bot.workspace.crypto import Vault
from tests.bot.delivery.test_webhooks import say
from tests.conftest import eventually
from tests.fakes.echo_channel import EchoChannel
from tests.fakes.webhook_receiver import Receiver, receiving


@pytest.mark.parametrize(
    ("address", "always", "why"),
    [
        ("169.254.169.254", True, "link-local or a cloud metadata"),
        ("169.254.0.1", True, "link-local or a cloud metadata"),
        ("fe80::1", True, "link-local or a cloud metadata"),
        ("fd00:ec2::254", True, "link-local or a cloud metadata"),
        ("::ffff:169.254.169.254", True, "link-local or a cloud metadata"),
        ("0.0.0.0", True, "not a unicast address"),
        ("224.0.0.1", True, "not a unicast address"),
        ("127.0.0.1", False, "CHANCENTER_WEBHOOKS_ALLOW_PRIVATE=true"),
        ("10.1.2.3", False, "loopback or private"),
        ("192.168.1.1", False, "loopback or private"),
        ("::1", False, "loopback or private"),
        ("fd12::1", False, "loopback or private"),
        ("::ffff:127.0.0.1", False, "loopback or private"),
    ],
)
def test_refused_addresses(address: str, always: bool, why: str) -> None:
    """`always`: refused even where private receivers are allowed."""
    reason = refusal(ipaddress.ip_address(address), allow_private=False)
    assert reason is not None and why in reason
    assert (refusal(ipaddress.ip_address(address), allow_private=True) is not None) == always


def test_public_addresses_pass() -> None:
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"):
        assert refusal(ipaddress.ip_address(address), allow_private=False) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/x", "not an http(s) URL"),
        ("http:///nohost", "not an http(s) URL"),
        ("https://user:pw@example.com/", "no user or password"),
        ("http://169.254.169.254/latest/meta-data", "cloud metadata"),
        ("http://[fd00:ec2::254]/", "cloud metadata"),
        ("http://localhost:8080/", "127.0.0.1 is a loopback"),
        ("http://no-such-host.invalid/", "does not resolve"),
    ],
)
async def test_targets_refused_when_subscribing(url: str, why: str) -> None:
    with pytest.raises(Refused, match=re.escape(why)):
        await check_target(url, allow_private=False)


class _Names(AbstractResolver):
    """DNS as an attacker runs it: a public address beside the metadata one."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": a,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_a_name_with_one_refused_address_is_refused_whole() -> None:
    guarded = GuardedResolver(False, _Names("93.184.216.34", "169.254.169.254"))
    with pytest.raises(Refused, match=re.escape("hooks.example resolves to 169.254.169.254")):
        await guarded.resolve("hooks.example", 443)
    fine = GuardedResolver(False, _Names("93.184.216.34"))
    assert [r["host"] for r in await fine.resolve("hooks.example", 443)] == ["93.184.216.34"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """This hub allows no private receivers (the other tests' hubs do)."""
    return settings.model_copy(update={"webhooks_allow_private": False})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as receiver:
        yield receiver


async def test_the_api_refuses_internal_targets_with_422_and_stores_nothing(
    client: TestClient, app: Application, receiver: Receiver
) -> None:
    async with app[DB].write() as conn:
        token = await create_token(conn, app[DEFAULT_SPACE], None, "m", "manager")
    manager = {"Authorization": f"Bearer {token}"}
    for url, why in (
        (receiver.url(), "CHANCENTER_WEBHOOKS_ALLOW_PRIVATE=true"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ):
        made = await client.post(
            "/api/v1/webhooks", json={"url": url, "events": ["*"]}, headers=manager
        )
        assert made.status == 422 and why in (await made.json())["detail"]
    listed = await client.get("/api/v1/webhooks", headers=manager)
    assert (await listed.json())["items"] == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_the_address_is_checked_again_at_each_delivery(
    client: TestClient, app: Application, echo: EchoChannel, receiver: Receiver, host: str
) -> None:
    """A subscription made when its name was public (here: written straight into the
    database) whose name now points inside is refused at delivery, and nothing is sent."""
    assert not app[SETTINGS].webhooks_allow_private
    url = receiver.url().replace("127.0.0.1", host)
    vault = Vault(app[SETTINGS].signing_key())
    async with app[DB].write() as conn:
        await conn.execute(
            webhooks.insert().values(
                space_id=app[DEFAULT_SPACE],
                url=url,
                events=["message.received"],
                secret=sealed_secret(vault, "whsec_" + "A" * 32),
                created_at=now(),
                updated_at=now(),
            )
        )
    await app[TOPICS].refresh()
    await say(client, echo, "m1")
    app[WEBHOOKS].notify()

    async def refused() -> str | None:
        async with app[DB].read() as conn:
            row = (await conn.execute(webhook_deliveries.select())).first()
        return row.last_error if row is not None and row.attempts else None

    error = await eventually(refused)
    assert error.startswith("refused: ") and "loopback or private" in error
    assert receiver.requests == []
