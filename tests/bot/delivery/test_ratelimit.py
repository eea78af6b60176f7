"""Token buckets hold sends back before a platform would answer 429."""

from __future__ import annotations

import asyncio
import bisect
import time

import pytest
from redis.asyncio import Redis as AsyncRedis

from bot.delivery.ratelimit import KeyedBuckets, Limits, TokenBucket, paced, per_window
from tests.servers import Redis as RedisServer


async def test_a_bucket_spaces_acquires_at_its_rate() -> None:
    bucket = TokenBucket(rate=20, burst=2)
    started = time.monotonic()
    for _ in range(6):  # 2 from the burst, then 4 at 20/s
        await bucket.acquire()
    assert time.monotonic() - started >= 4 / 20 * 0.9


async def test_a_paced_bucket_stays_under_its_budget_in_every_second() -> None:
    budget = 100
    bucket = TokenBucket(*paced(budget))
    at: list[float] = []
    started = time.monotonic()
    while time.monotonic() - started < 2.5:
        await bucket.acquire()
        at.append(time.monotonic())
    busiest = max(bisect.bisect_left(at, t + 1.0) - n for n, t in enumerate(at))
    assert budget * 0.8 <= busiest <= budget


async def test_keys_do_not_wait_for_each_other_and_old_keys_are_dropped() -> None:
    buckets = KeyedBuckets(rate=1, burst=1, size=2)
    started = time.monotonic()
    for chat in ("a", "b", "c"):
        await buckets.acquire(chat)
    assert time.monotonic() - started < 0.5
    assert list(buckets._buckets) == ["b", "c"]


async def test_processes_sharing_redis_share_the_limit(redis_server: RedisServer) -> None:
    """Two workers sending for the same bot stay under one limit together."""
    clients = [AsyncRedis.from_url(redis_server.url) for _ in range(2)]
    try:
        buckets = [Limits(c).bucket("bot-1", rate=50, burst=5) for c in clients]
        started = time.monotonic()
        await asyncio.gather(*(buckets[n % 2].acquire() for n in range(60)))
        elapsed = time.monotonic() - started
        # 5 at once, then 50 a second: 55 more need 1.1 s whoever takes them
        assert elapsed >= 1.0
        per_chat = [Limits(c).bucket("bot-1:chat", rate=10, burst=1) for c in clients]
        started = time.monotonic()
        await asyncio.gather(*(per_chat[n % 2].acquire("42") for n in range(6)))
        await asyncio.gather(*(per_chat[n % 2].acquire(str(n)) for n in range(6)))
        assert 0.45 <= time.monotonic() - started < 1.5  # one chat waits, six chats do not
    finally:
        for c in clients:
            await c.aclose()


class VirtualClock:
    """Time that passes only when a bucket waits."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


@pytest.mark.parametrize(("limit", "seconds"), [(20, 60.0), (30, 1.0), (3, 10.0), (1, 5.0)])
async def test_a_windowed_bucket_keeps_under_its_limit_in_any_window(
    limit: int, seconds: float
) -> None:
    """Checked on virtual time: minutes of a limit without waiting for them."""
    clock = VirtualClock()
    bucket = TokenBucket(*per_window(limit, seconds), clock=clock, sleep=clock.sleep)
    at: list[float] = []
    for _ in range(limit * 6):
        await bucket.acquire()
        at.append(clock.now)

    def busiest(span: float) -> int:
        return max(bisect.bisect_right(at, t + span) - n for n, t in enumerate(at))

    assert busiest(seconds - 1e-6) <= limit  # a tiny tolerance for float sums
    if limit > 1:  # both ends included; one in twenty spare
        assert busiest(seconds + 1e-6) <= limit - limit // 20
    assert len(at) / (at[-1] / seconds) >= limit * 0.6  # not far under the limit either


async def test_limits_hand_their_clock_to_every_bucket() -> None:
    clock = VirtualClock()
    limits = Limits(clock=clock, sleep=clock.sleep)
    single, keyed = limits.bucket("a", rate=1, burst=1), limits.bucket("b", rate=1, burst=1)
    for _ in range(3):
        await single.acquire()
    assert clock.now == pytest.approx(2.0)  # two waits of 1 s, on virtual time
    for _ in range(3):
        await keyed.acquire("chat")
    assert clock.now == pytest.approx(4.0)
