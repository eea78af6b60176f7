"""Token buckets, so we stay under a platform's limits instead of waiting for its 429s.

In one process they live in memory; with Redis (several workers sending for the
same bot) they live in Redis, so the workers together stay under the limit.

Broadcasts share a channel's buckets with conversation replies, and replies go first:
sends made inside `yielding()` take a token only when one is spare and no other caller
waits, so a contact who answers during a broadcast is answered as fast as without it.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Protocol

from redis.asyncio import Redis

from bot.storage import redis_keys

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# Set by `yielding()` for the sends of one task (the broadcast runner's); a context
# variable, so the buckets' callers need no extra argument and other tasks are untouched.
_YIELDING: ContextVar[bool] = ContextVar("chancenter_ratelimit_yielding", default=False)


@contextmanager
def yielding() -> Iterator[None]:
    """Sends inside yield to every other caller of the buckets they use.

    Example (the broadcast runner)::

        with yielding():
            await channel.send(outbound)

    A yielding caller takes a token only when no other caller waits and one is spare
    (one is left in the bucket when its burst allows), so other callers never wait
    behind it for more than one token interval; alone, yielding callers still get the
    bucket's whole rate.
    """
    token = _YIELDING.set(True)
    try:
        yield
    finally:
        _YIELDING.reset(token)


def _floor(burst: float) -> float:
    """Tokens a yielding caller must find to take one: two when the burst allows, so one
    stays for an urgent caller, who then finds it at once."""
    return 2.0 if burst >= 2 else 1.0


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
        # yielding callers queue apart, one at a time: a hundred of them wait as one
        self._yield_lock = asyncio.Lock()
        self._urgent = 0  # urgent callers inside `acquire`, waiting or taking
        self._idle = asyncio.Event()  # set while there are none
        self._idle.set()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self) -> None:
        """Wait for a token; inside `yielding()`, only for a spare one."""
        if _YIELDING.get():
            await self._acquire_yielding()
            return
        self._urgent += 1
        self._idle.clear()
        try:
            async with self._lock:  # waiters are served in order
                self._refill()
                if self._tokens < 1:
                    await self._sleep((1 - self._tokens) / self.rate)
                    self._refill()
                self._tokens -= 1
        finally:
            self._urgent -= 1
            if not self._urgent:
                self._idle.set()

    async def _acquire_yielding(self) -> None:
        floor = _floor(self.burst)
        async with self._yield_lock:
            while True:
                if self._urgent:
                    await self._idle.wait()
                    continue  # another urgent caller may have come since
                self._refill()
                short = floor - self._tokens
                if short < 1e-9:  # float sums may leave a hair's breadth short
                    self._tokens -= 1
                    return
                await self._sleep(short / self.rate)


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
    was reached that way); 25 ms of sends absorbs it. The rate is the budget less one and
    a half bursts: 96% of it is reached, and a little is left for the way to the
    platform, where a busy moment can bunch sends the bucket had spaced out.
    """
    burst = max(1.0, budget / 40)
    return max(budget - 1.5 * burst, budget / 2), burst


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

# A yielding caller's take: one token only when at least ARGV[3] (the floor) are there,
# never into debt; else how long until there would be (seconds). Urgent callers' debt
# (TAKE's negative tokens) is repaid first, so they never wait behind a yielding one.
TAKE_SPARE = """
local rate, burst, floor = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('time')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('hmget', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(state[1]) or burst
local stamp = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - stamp) * rate)
if tokens < floor then return tostring((floor - tokens) / rate) end
redis.call('hset', KEYS[1], 'tokens', tokens - 1, 'stamp', now)
redis.call('expire', KEYS[1], math.ceil(burst / rate) + 60)
return '0'
"""


class _Turns:
    """One lock per bucket for a process's yielding callers, dropped once nobody holds or
    awaits it: they poll Redis one at a time, not as a herd."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def turn(self, name: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(name) or (asyncio.Lock(), 0)
        self._locks[name] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[name]
            if users > 1:
                self._locks[name] = (lock, users - 1)
            else:
                del self._locks[name]


class _Shared:
    def __init__(self, redis: Redis, name: str, rate: float, burst: float, sleep: Sleep) -> None:
        self._take = redis.register_script(TAKE)
        self._take_spare = redis.register_script(TAKE_SPARE)
        self._name, self._rate, self._burst = name, rate, max(burst, 1.0)
        self._sleep = sleep
        self._turns = _Turns()

    async def acquire(self, key: str = "") -> None:
        name = redis_keys.rate_bucket(self._name, key)
        if _YIELDING.get():
            await self._acquire_yielding(name)
            return
        wait = float(await self._take(keys=[name], args=[self._rate, self._burst]))
        if wait > 0:
            await self._sleep(wait)

    async def _acquire_yielding(self, name: str) -> None:
        args = [self._rate, self._burst, _floor(self._burst)]
        async with self._turns.turn(name):
            while (wait := float(await self._take_spare(keys=[name], args=args))) > 0:
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
