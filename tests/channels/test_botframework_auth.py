"""The Bot Framework's tokens (`channels.botframework_auth`): the SDK's checks at the
fake's keys, key rollover, an unreachable Microsoft, the app's token cached, and a slow
Microsoft that never stalls the hub (the SDK's blocking fetches run in threads)."""

from __future__ import annotations

import asyncio
import gc
import time
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from botbuilder.schema import Activity
from botframework.connector.auth import JwtTokenExtractor

from bot.errors import ConfigError, Unavailable, WebhookRejected
from channels.botframework_auth import AppCredentials, Gate, fetch_token
from tests.channels.conftest import APP_ID, APP_PASSWORD, from_teams, teams_channel
from tests.fakes.botframework import FakeBotFramework, teams_activity

NOWHERE = "https://127.0.0.1:9/"  # nothing listens on the discard port


def gate(bf: FakeBotFramework, openid_url: str | None = None) -> Gate:
    return Gate(APP_ID, APP_PASSWORD, None, openid_url or bf.openid_url, bf.login_url)


def activity(bf: FakeBotFramework) -> Activity:
    return Activity().deserialize(teams_activity(app_id=APP_ID, service_url=bf.service_url))


async def test_a_rolled_over_key_is_fetched_but_not_on_every_unknown_key(
    bf: FakeBotFramework,
) -> None:
    checker = gate(bf)
    await checker.check(activity(bf), bf.sign(APP_ID, bf.service_url))
    fetched = bf.metadata_fetches
    assert fetched == 2  # the metadata, then its keys
    with pytest.raises(WebhookRejected):  # unknown now, and the keys are fresh
        await checker.check(activity(bf), bf.sign(APP_ID, bf.service_url, kid="rolled-over"))
    assert bf.metadata_fetches == fetched

    bf.kid = "rolled-over"  # Microsoft publishes the new key; ours are 6 minutes old
    metadata: Any = JwtTokenExtractor.get_open_id_metadata(bf.openid_url)
    metadata.last_updated -= timedelta(minutes=6)
    await checker.check(activity(bf), bf.sign(APP_ID, bf.service_url))
    assert bf.metadata_fetches == fetched + 2


async def test_unreachable_signing_keys_are_503_for_the_connector_to_retry(
    bf: FakeBotFramework,
) -> None:
    with pytest.raises(Unavailable, match="signing keys are unreachable"):
        await gate(bf, f"{NOWHERE}v1/.well-known/openidconfiguration").check(
            activity(bf), bf.sign(APP_ID, bf.service_url)
        )


async def test_the_apps_token_is_fetched_once_and_a_refusal_says_so(
    bf: FakeBotFramework,
) -> None:
    credentials = AppCredentials(APP_ID, APP_PASSWORD, None, bf.login_url)
    lock = asyncio.Lock()
    tokens = await asyncio.gather(*(fetch_token(credentials, lock) for _ in range(5)))
    assert len(set(tokens)) == 1 and tokens[0] in bf.issued
    assert bf.token_requests == [("botframework.com", APP_ID)]

    wrong = AppCredentials(APP_ID, "not-the-password", None, bf.login_url)
    with pytest.raises(ConfigError, match="AADSTS7000215"):
        await fetch_token(wrong, lock)
    away = AppCredentials(APP_ID, APP_PASSWORD, None, NOWHERE)
    with pytest.raises(Unavailable, match="login endpoint is unreachable"):
        await fetch_token(away, lock)


async def test_a_slow_microsoft_does_not_stall_the_hub(
    bf_hub: TestClient, bf: FakeBotFramework
) -> None:
    channel = await teams_channel(bf_hub)
    bf.delay = 0.5  # each of the metadata, the keys and the token
    gaps: list[float] = []
    marks: list[float] = []  # when the garbage collector starts and stops: not I/O

    def collector(_phase: str, _info: dict[str, Any]) -> None:
        marks.append(time.monotonic())

    async def probe() -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            gaps.append(time.monotonic() - before)

    # as `chancenter serve` does once started: what the test session has piled up (a
    # thousand tests' objects) is not walked again by a full collection meanwhile
    gc.collect()
    gc.freeze()
    gc.callbacks.append(collector)
    ticking = asyncio.create_task(probe())
    try:
        started = time.monotonic()
        assert (await from_teams(bf_hub, bf, channel, text="hi")).status == 200
        await bf.wait_for(1)
        assert time.monotonic() - started >= 1.5  # the keys and the token were slow
    finally:
        ticking.cancel()
        gc.callbacks.remove(collector)
        gc.unfreeze()
    paused = sum(stop - start for start, stop in zip(marks[::2], marks[1::2], strict=False))
    assert max(gaps) < 0.3, f"the event loop stalled for {max(gaps):.2f}s (GC {paused:.2f}s)"


async def test_a_cold_start_fetches_the_keys_once_however_many_requests_wait(
    bf: FakeBotFramework,
) -> None:
    checker = gate(bf)
    header = bf.sign(APP_ID, bf.service_url)
    await asyncio.gather(*(checker.check(activity(bf), header) for _ in range(20)))
    assert bf.metadata_fetches == 2  # the metadata and its keys, once
