"""Token buckets hold sends back before a platform would answer 429."""

from __future__ import annotations

import time

from bot.ratelimit import KeyedBuckets, TokenBucket


async def test_a_bucket_spaces_acquires_at_its_rate() -> None:
    bucket = TokenBucket(rate=20, burst=2)
    started = time.monotonic()
    for _ in range(6):  # 2 from the burst, then 4 at 20/s
        await bucket.acquire()
    assert time.monotonic() - started >= 4 / 20 * 0.9


async def test_keys_do_not_wait_for_each_other_and_old_keys_are_dropped() -> None:
    buckets = KeyedBuckets(rate=1, burst=1, size=2)
    started = time.monotonic()
    for chat in ("a", "b", "c"):
        await buckets.acquire(chat)
    assert time.monotonic() - started < 0.5
    assert list(buckets._buckets) == ["b", "c"]
