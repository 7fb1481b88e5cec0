"""A token bucket per key: `allow(key)` is False when the key sent too much too fast."""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, capacity: int, per_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = float(capacity)
        self._refill_per_second = capacity / per_seconds
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def allow(self, key: str) -> bool:
        now = self._clock()
        tokens, last = self._buckets.get(key, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - last) * self._refill_per_second)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > 10_000:
            self._forget_full_buckets(now)
        return allowed

    def retry_after(self, key: str) -> float:
        tokens, _ = self._buckets.get(key, (self._capacity, 0.0))
        return max(0.0, (1.0 - tokens) / self._refill_per_second)

    def _forget_full_buckets(self, now: float) -> None:
        """Keys whose bucket has refilled are forgotten, so memory stays bounded."""
        full_after = self._capacity / self._refill_per_second
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
