"""The token buckets every server shares (policy host, report endpoint, web inspector and login), on a
stepped clock."""

from __future__ import annotations

import pytest

from mtasts.net.ratelimit import RateLimit, RateLimiter


def test_burst_then_refill_per_client() -> None:
    limiter = RateLimiter(RateLimit(per_minute=6, burst=2), RateLimit(per_minute=600, burst=100))
    assert limiter.acquire("a", 0.0) == 0
    assert limiter.acquire("a", 0.0) == 0
    assert limiter.acquire("a", 0.0) == 10  # one token every 10 s
    assert limiter.acquire("b", 0.0) == 0  # another client is not affected
    assert limiter.acquire("a", 4.0) == 6
    assert limiter.acquire("a", 10.0) == 0
    assert limiter.acquire("a", 10.0) == 10


def test_total_limit_across_clients_takes_nothing_when_refused() -> None:
    limiter = RateLimiter(RateLimit(per_minute=60, burst=1), RateLimit(per_minute=30, burst=2))
    assert limiter.acquire("a", 0.0) == 0
    assert limiter.acquire("b", 0.0) == 0
    assert limiter.acquire("c", 0.0) == 2
    # c's own bucket was not charged for the refused check: at 2 s the shared one has a token
    assert limiter.acquire("c", 2.0) == 0


def test_forgotten_clients_start_full() -> None:
    limiter = RateLimiter(RateLimit(per_minute=1, burst=1), RateLimit(per_minute=600, burst=100), max_clients=2)
    assert limiter.acquire("a", 0.0) == 0
    assert limiter.acquire("a", 0.0) == 60
    limiter.acquire("b", 0.0)
    limiter.acquire("c", 0.0)  # a, the least recently seen, is forgotten
    assert limiter.acquire("a", 0.0) == 0


def test_invalid_limits() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        RateLimit(per_minute=0, burst=1)
    with pytest.raises(ValueError, match="burst"):
        RateLimit(per_minute=1, burst=0)


def test_per_client_only_waits_in_seconds() -> None:
    # the policy host's and the report endpoint's use: no shared bucket, the wait as a float
    limiter = RateLimiter(RateLimit.per_second(1.0, 2))
    assert [limiter.wait("a", 0.0) for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]
    assert limiter.wait("b", 0.0) == 0.0
    assert limiter.wait("a", 0.5) == pytest.approx(0.5)
    assert limiter.wait("a", 1.0) == 0.0  # one token a second came back


def test_memory_is_bounded_and_recent_clients_are_remembered() -> None:
    limiter = RateLimiter(RateLimit.per_second(0.001, 1), max_clients=4)
    for number in range(10_000):
        limiter.wait(str(number), float(number) / 1000)
    assert len(limiter) == 4
    assert limiter.wait("9999", 10.0) > 0  # the most recent client is still held to its empty bucket
    assert limiter.wait("0", 10.0) == 0.0  # a long-forgotten one starts full


def test_a_clock_that_steps_back_gives_no_tokens() -> None:
    limiter = RateLimiter(RateLimit.per_second(1.0, 1))
    assert limiter.wait("a", 100.0) == 0.0
    assert limiter.wait("a", 50.0) > 0
