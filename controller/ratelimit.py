"""Bounds on what a storm can cost the controller: a token bucket per source of packet-ins,
and logging that says one line per cause per interval, with a count.

Pure: time comes in as `now` (seconds); nothing here sleeps or reads a clock.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class TokenBucket:
    rate: float            # tokens per second
    burst: float           # at most this many saved up
    tokens: float = -1.0
    at: float = 0.0
    refused: int = 0

    def allow(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.at = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.refused += 1
        return False


class Buckets:
    """One TokenBucket per key (a hypervisor's port), made on first use."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.by_key: dict = {}

    def allow(self, key, now: float) -> bool:
        bucket = self.by_key.get(key)
        if bucket is None:
            bucket = self.by_key[key] = TokenBucket(self.rate, self.burst)
        return bucket.allow(now)

    def refused(self) -> dict:
        return {k: b.refused for k, b in self.by_key.items() if b.refused}


class LogLimiter:
    """note(cause, text, now) -> the line to log now, or None. The first occurrence of a cause
    is logged at once; later ones are counted and summed up at most once per `interval`."""

    def __init__(self, interval: float = 10.0):
        self.interval = interval
        self.last: dict[str, float] = {}
        self.count: dict[str, int] = {}

    def note(self, cause: str, text: str, now: float) -> str | None:
        if cause not in self.last:
            self.last[cause], self.count[cause] = now, 0
            return text
        self.count[cause] += 1
        if now - self.last[cause] < self.interval:
            return None
        n, self.count[cause], self.last[cause] = self.count[cause], 0, now
        return f"{text} (and {n - 1} more like it in the last {self.interval:.0f} s)" if n > 1 else text
