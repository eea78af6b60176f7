"""Token buckets hold sends back before a platform would answer 429."""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import time
from typing import Any

import pytest
from redis.asyncio import Redis as AsyncRedis

from bot.delivery.ratelimit import (
    KeyedBuckets,
    Limits,
    TokenBucket,
    paced,
    per_window,
    yielding,
)
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


class SteppedClock:
    """Virtual time for many tasks at once: a sleep suspends until `run_until` moves time
    to its end (`VirtualClock`'s sleeps return at once, which suits one caller only)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0
        self._wakes: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        wake = asyncio.get_running_loop().create_future()
        heapq.heappush(self._wakes, (self.now + max(seconds, 0.0), next(self._order), wake))
        await wake

    async def run_until(self, end: float) -> None:
        """Let every task run until all wait, wake the earliest sleeper; again, up to `end`."""
        while True:
            for _ in range(20):  # hand-offs (locks, events) take a few turns of the loop
                await asyncio.sleep(0)
            if not self._wakes or self._wakes[0][0] > end:
                break
            at, _, wake = heapq.heappop(self._wakes)
            self.now = max(self.now, at)
            if not wake.done():
                wake.set_result(None)
        self.now = max(self.now, end)


async def _broadcast(bucket: Any, key: str, sent: list[float], clock: SteppedClock) -> None:
    """A broadcast's sender: takes tokens inside `yielding()` for as long as it runs."""
    with yielding():
        while True:
            await bucket.acquire(key)
            sent.append(clock.now)


async def _stop(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("key", ["", "chat-42"])
@pytest.mark.parametrize("burst", [1.0, 1.5, 3.0])
async def test_a_reply_waits_at_most_one_token_interval_behind_a_busy_broadcast(
    burst: float, key: str
) -> None:
    """Fifty yielding senders keep the bucket busy; a reply at any moment still goes at
    once (a token is left for it when the burst allows), or within one interval."""
    rate = 10.0
    clock = SteppedClock()
    bucket = Limits(clock=clock, sleep=clock.sleep).bucket("telegram:1", rate, burst)
    sent: list[float] = []
    senders = [asyncio.create_task(_broadcast(bucket, key, sent, clock)) for _ in range(50)]

    async def reply() -> float:
        await bucket.acquire(key)
        return clock.now

    try:
        for at in (5.0, 8.37, 11.91, 15.05):  # each after the last reply's 2 s
            await clock.run_until(at)
            answered = asyncio.create_task(reply())
            await clock.run_until(at + 2.0)
            waited = answered.result() - at
            assert waited <= 1 / rate + 1e-9
            if burst >= 2:
                assert waited == 0  # the token left in the bucket
        # the broadcast went on at the bucket's rate, less the replies' tokens
        assert len(sent) >= rate * clock.now - 4 - 1
    finally:
        await _stop(senders)


@pytest.mark.parametrize(("rate", "burst"), [(10.0, 1.0), paced(30), paced(80), (5.0, 4.0)])
async def test_yielding_senders_alone_get_the_buckets_whole_rate(rate: float, burst: float) -> None:
    """A hundred of them, serialized: one waiter sleeps at a time, never a polling herd."""
    clock = SteppedClock()
    bucket = TokenBucket(rate, burst, clock=clock, sleep=clock.sleep)
    sent: list[float] = []
    senders = [
        asyncio.create_task(_broadcast(_Unkeyed(bucket), "", sent, clock)) for _ in range(100)
    ]
    try:
        await clock.run_until(60.0)
    finally:
        await _stop(senders)
    expected = rate * 60
    assert expected * 0.99 <= len(sent) <= expected + burst
    assert clock.sleeps <= len(sent) + 1


class _Unkeyed:
    def __init__(self, bucket: TokenBucket) -> None:
        self._bucket = bucket

    async def acquire(self, key: str = "") -> None:
        await self._bucket.acquire()


async def test_replies_go_first_through_the_shared_redis_bucket(redis_server: RedisServer) -> None:
    """Two processes' broadcasts keep a Redis bucket busy; a reply still finds a token at
    once, the broadcast keeps the bucket's rate, and replies' debt holds it back."""
    rate, burst = 10.0, 2.0
    clients = [AsyncRedis.from_url(redis_server.url) for _ in range(2)]
    senders: list[asyncio.Task[Any]] = []
    try:
        buckets = [Limits(c).bucket("whatsapp:1", rate, burst) for c in clients]
        sent: list[float] = []

        async def broadcast(n: int) -> None:
            with yielding():
                while True:
                    await buckets[n % 2].acquire()
                    sent.append(time.monotonic())

        senders = [asyncio.create_task(broadcast(n)) for n in range(20)]
        started = time.monotonic()
        await asyncio.sleep(0.5)
        for n in range(3):
            asked = time.monotonic()
            await buckets[n % 2].acquire()
            # urgent through the old TAKE alone, behind 20 reservations: 2 s
            assert time.monotonic() - asked < 1 / rate
            await asyncio.sleep(0.25)
        elapsed = time.monotonic() - started
        assert rate * elapsed * 0.6 <= len(sent) <= rate * elapsed + burst
        await _stop(senders)

        # replies that put the bucket in debt (2 - 4 = -2) are repaid before a yielding
        # send, which then waits for 2 tokens: 4 intervals in all
        asked = time.monotonic()
        await asyncio.gather(*(buckets[0].acquire("debt") for _ in range(4)))
        with yielding():
            await buckets[1].acquire("debt")
        assert time.monotonic() - asked >= 4 / rate * 0.9
    finally:
        await _stop(senders)
        for c in clients:
            await c.aclose()
