"""Request rates per client and in total, as token buckets: the one limiter every server uses
(the policy host and its ACME challenge listener, the report endpoint, the web inspector and
its login form).

Sans I/O: the caller passes the time (monotonic seconds), so tests step it instead of
sleeping. A request costs one token from its client's bucket and, when there is a total
limit, one from the shared bucket; a bucket refills at its rate up to ``burst``. When either
is empty the answer is how long until it holds a token again (a ``Retry-After``), and nothing
is taken from the other, so a refused client does not drain the shared budget.

At most ``max_clients`` buckets are remembered; the least recently seen client is forgotten
first. A forgotten client gets a fresh, full bucket back, which only ever errs on the side of
serving, and memory stays bounded however many addresses a flood comes from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["RateLimit", "RateLimiter"]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``per_minute`` requests a minute on average, ``burst`` at once."""

    per_minute: float
    burst: int

    def __post_init__(self) -> None:
        if not self.per_minute > 0 or self.burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")

    @classmethod
    def per_second(cls, rate: float, burst: int) -> RateLimit:
        """The limit of ``rate`` requests a second on average, ``burst`` at once."""
        return cls(per_minute=rate * 60.0, burst=burst)

    @property
    def rate(self) -> float:
        """Tokens a second."""
        return self.per_minute / 60.0


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated

    def refill(self, limit: RateLimit, now: float) -> float:
        """Refill to ``now``; the seconds until this bucket holds one token (0 when it does)."""
        if now > self.updated:
            self.tokens = min(float(limit.burst), self.tokens + (now - self.updated) * limit.rate)
            self.updated = now
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / limit.rate


class RateLimiter:
    """Per-client buckets and, optionally, one shared bucket (see the module docstring)."""

    def __init__(self, per_client: RateLimit, total: RateLimit | None = None, *, max_clients: int = 10_000) -> None:
        if max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        self.per_client = per_client
        self.total = total
        self.max_clients = max_clients
        self._clients: dict[str, _Bucket] = {}  # insertion order = least recently seen first
        self._shared: _Bucket | None = None

    def __len__(self) -> int:
        """How many clients are remembered."""
        return len(self._clients)

    def wait(self, client: str, now: float) -> float:
        """Take a token for ``client``: 0.0 when taken, else the seconds until one would be."""
        clients = self._clients
        mine = clients.pop(client, None)
        if mine is None:
            mine = _Bucket(float(self.per_client.burst), now)
            if len(clients) >= self.max_clients:
                del clients[next(iter(clients))]
        clients[client] = mine
        wait = mine.refill(self.per_client, now)
        if self.total is not None:
            if self._shared is None:
                self._shared = _Bucket(float(self.total.burst), now)
            wait = max(wait, self._shared.refill(self.total, now))
        if wait > 0.0:
            return wait
        mine.tokens -= 1.0
        if self._shared is not None:
            self._shared.tokens -= 1.0
        return 0.0

    def acquire(self, client: str, now: float) -> int:
        """:meth:`wait` in whole seconds, as a ``Retry-After`` says it: 0 when taken, else ≥ 1."""
        wait = self.wait(client, now)
        return 0 if wait == 0.0 else max(1, math.ceil(wait))
