"""Token buckets, so we stay under a platform's limits instead of waiting for its 429s.

In one process they live in memory; with Redis (several workers sending for the
same bot) they live in Redis, so the workers together stay under the limit.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

from redis.asyncio import Redis

from bot.storage import redis_keys

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """`rate` tokens per second, up to `burst` saved; `acquire` waits for one.

    `clock` and `sleep` are the real ones but for tests, which check minutes of limits
    on virtual time instead of waiting for them.
    """

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._clock, self._sleep = clock, sleep
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self) -> None:
        async with self._lock:  # waiters are served in order
            self._refill()
            if self._tokens < 1:
                await self._sleep((1 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1


class KeyedBuckets:
    """One bucket per key (per chat), keeping only the most recently used `size` keys."""

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        size: int = 10_000,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._rate, self._burst, self._size = rate, burst, size
        self._clock, self._sleep = clock, sleep
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    async def acquire(self, key: str) -> None:
        bucket = self._buckets.pop(key, None) or TokenBucket(
            self._rate, self._burst, self._clock, self._sleep
        )
        self._buckets[key] = bucket
        while len(self._buckets) > self._size:
            self._buckets.popitem(last=False)
        await bucket.acquire()


def paced(budget: float) -> tuple[float, float]:
    """`(rate, burst)` of a bucket whose sends never reach a platform faster than `budget`/s.

    A bucket lets `burst + rate` through in any second. Some burst is needed: with none,
    every late wake-up of the event loop is a send lost for good (87% of a 200/s budget
    was reached that way); 5% of the budget absorbs it. Another 5% is left for the way
    to the platform, where a busy moment can bunch sends the bucket had spaced out.
    """
    burst = max(1.0, budget / 20)
    return max(budget - 2 * burst, budget / 2), burst


def per_window(limit: int, seconds: float) -> tuple[float, float]:
    """`(rate, burst)` of a bucket that keeps under a limit counted over a window
    (Telegram: 20 messages a minute to a group).

    A bucket lets `burst + rate * seconds` through in any such window, ends included:
    a fifth of the limit may go at once, and one in twenty is kept spare for sends that
    the way to the platform bunches together.
    """
    burst = max(1, limit // 5)
    return max(limit - burst - limit // 20, 1) / seconds, float(burst)


class Bucket(Protocol):
    async def acquire(self, key: str = "") -> None: ...


class _Local:
    def __init__(self, rate: float, burst: float, clock: Clock, sleep: Sleep) -> None:
        self._single = TokenBucket(rate, burst, clock, sleep)
        self._keyed = KeyedBuckets(rate, burst, clock=clock, sleep=sleep)

    async def acquire(self, key: str = "") -> None:
        await (self._keyed.acquire(key) if key else self._single.acquire())


# Reserve one token and answer how long to wait for it (seconds); the clock is Redis's own,
# so every process agrees. Tokens may go below zero: each caller waits for its own slot.
TAKE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('time')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('hmget', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(state[1]) or burst
local stamp = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - stamp) * rate) - 1
redis.call('hset', KEYS[1], 'tokens', tokens, 'stamp', now)
redis.call('expire', KEYS[1], math.ceil(burst / rate) + 60)
if tokens >= 0 then return '0' end
return tostring(-tokens / rate)
"""


class _Shared:
    def __init__(self, redis: Redis, name: str, rate: float, burst: float, sleep: Sleep) -> None:
        self._take = redis.register_script(TAKE)
        self._name, self._rate, self._burst = name, rate, max(burst, 1.0)
        self._sleep = sleep

    async def acquire(self, key: str = "") -> None:
        wait = float(
            await self._take(
                keys=[redis_keys.rate_bucket(self._name, key)], args=[self._rate, self._burst]
            )
        )
        if wait > 0:
            await self._sleep(wait)


class Limits:
    """Makes a channel's buckets: in memory, or shared through Redis (whose clock counts)."""

    def __init__(
        self,
        redis: Redis | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._redis = redis
        self._clock, self._sleep = clock, sleep

    def bucket(self, name: str, rate: float, burst: float = 1.0) -> Bucket:
        """`acquire()` for one limit, `acquire(key)` for one limit per key (per chat)."""
        if self._redis is None:
            return _Local(rate, burst, self._clock, self._sleep)
        return _Shared(self._redis, name, rate, burst, self._sleep)
