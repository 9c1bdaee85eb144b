"""Per-token rate limits: one token bucket per token name, refilled continuously.

A bucket holds up to `burst` requests and refills at `rate` per second; a request takes one or is refused
(429) with the seconds until one is back, for Retry-After. The clock is passed in, so tests step it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Bucket:
    rate: float
    burst: int
    tokens: float
    at: float

    def take(self, now: float) -> float:
        """Take one request; 0.0 when allowed, else the seconds until one is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    """Buckets by key, created full on first use; thread-safe (request handlers run in a thread pool)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._buckets: dict[str, Bucket] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, key: str, rate: float | None = None, burst: int | None = None) -> float:
        """0.0 if `key` may make a request now (and it is counted), else the seconds to wait.

        `rate` and `burst` override the defaults for this key (a token's own limit).
        """
        now = self._clock()
        rate, burst = rate or self.rate, burst or self.burst
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None or (bucket.rate, bucket.burst) != (rate, burst):
                bucket = self._buckets[key] = Bucket(rate, burst, float(burst), now)
            return bucket.take(now)


def retry_after(seconds: float) -> str:
    """A Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
