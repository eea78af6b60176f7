"""Token buckets, so we stay under a platform's limits instead of waiting for its 429s."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict


class TokenBucket:
    """`rate` tokens per second, up to `burst` saved; `acquire` waits for one."""

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self) -> None:
        async with self._lock:  # waiters are served in order
            self._refill()
            if self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1


class KeyedBuckets:
    """One bucket per key (per chat), keeping only the most recently used `size` keys."""

    def __init__(self, rate: float, burst: float = 1.0, size: int = 10_000) -> None:
        self._rate, self._burst, self._size = rate, burst, size
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    async def acquire(self, key: str) -> None:
        bucket = self._buckets.pop(key, None) or TokenBucket(self._rate, self._burst)
        self._buckets[key] = bucket
        while len(self._buckets) > self._size:
            self._buckets.popitem(last=False)
        await bucket.acquire()
