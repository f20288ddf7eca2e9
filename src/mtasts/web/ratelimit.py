"""Rate limits of the public inspector: per client and in total, as token buckets.

Pure: the caller passes the time (monotonic seconds), so tests step it instead of sleeping.
A check costs one token from the client's bucket and one from the shared one; a bucket
refills at ``per_minute / 60`` tokens a second up to ``burst``. When either is empty the
answer is how long until it holds a token again (the ``Retry-After`` of the 429), and
nothing is taken from the other.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["Bucket", "RateLimit", "RateLimiter"]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``per_minute`` checks a minute on average, ``burst`` at once."""

    per_minute: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_minute <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0


@dataclass(slots=True)
class Bucket:
    tokens: float
    updated: float

    def refill(self, limit: RateLimit, now: float) -> None:
        self.tokens = min(float(limit.burst), self.tokens + (now - self.updated) * limit.per_second)
        self.updated = now

    def wait(self, limit: RateLimit) -> float:
        """Seconds until this (refilled) bucket holds one token; 0 when it does."""
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / limit.per_second


class RateLimiter:
    """Per-client buckets (at most ``max_clients`` remembered: the least recently seen is
    forgotten first, which only ever gives a client a fresh, full bucket) and one shared bucket."""

    def __init__(self, per_client: RateLimit, total: RateLimit, *, max_clients: int = 10_000) -> None:
        self.per_client = per_client
        self.total = total
        self.max_clients = max_clients
        self._clients: OrderedDict[str, Bucket] = OrderedDict()
        self._total: Bucket | None = None

    def acquire(self, client: str, now: float) -> int:
        """Take a token for ``client``: 0 when taken, else the whole seconds to wait (≥ 1)."""
        shared = self._total or Bucket(float(self.total.burst), now)
        self._total = shared
        mine = self._clients.pop(client, None) or Bucket(float(self.per_client.burst), now)
        self._clients[client] = mine
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)
        shared.refill(self.total, now)
        mine.refill(self.per_client, now)
        wait = max(mine.wait(self.per_client), shared.wait(self.total))
        if wait > 0:
            return max(1, math.ceil(wait))
        mine.tokens -= 1.0
        shared.tokens -= 1.0
        return 0
