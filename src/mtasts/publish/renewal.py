"""When to ask the ACME CA for a certificate: pure decisions, the time passed in.

Nothing here reads a file, a socket or the clock; :mod:`mtasts.publish.acme` reads the
certificates and the time and carries the decisions out. The rules:

=========================================  ====================================================
the certificate of ``mta-sts.<domain>``    decision
=========================================  ====================================================
none yet                                   order one now (``missing``)
before two thirds of its lifetime          keep it; renew at ``not_before + 2/3 lifetime``
                                           (Let's Encrypt's own advice for 90-day certificates:
                                           renew at 60 days, so a month of failures is survivable)
the CA suggests an earlier time (ARI,      renew at the earlier of the two
RFC 9773 ``renewalInfo``)
past two thirds                            renew now (``due``)
within 14 days of ``not_after``            also ``alert``: logged as an error and in the metrics
past ``not_after``                         ``expired`` (and ``alert``): senders cannot fetch
=========================================  ====================================================

A failed attempt is retried with exponential backoff (:func:`retry_delay`: 1 minute, doubled
per consecutive failure, at most 6 hours), spread a little per name (a deterministic fraction
of the delay from the name's hash, so thousands of names that failed together, when the CA was
down, do not all return in the same second; no random numbers, so the tests know the times).
A CA that cannot be reached at all backs off as a whole (:class:`Backoff` kept per CA), so an
outage costs one attempt per retry, not one per domain.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

__all__ = [
    "ALERT_WINDOW",
    "MAX_RETRY_DELAY",
    "RETRY_DELAY",
    "Backoff",
    "Reason",
    "RenewalDecision",
    "decide",
    "retry_delay",
]

ALERT_WINDOW = timedelta(days=14)
RETRY_DELAY = timedelta(minutes=1)
MAX_RETRY_DELAY = timedelta(hours=6)
_SPREAD = 0.1  # at most this fraction of a retry delay is added, per name


class Reason(StrEnum):
    """Why a certificate is (or is not yet) ordered."""

    MISSING = "missing"
    DUE = "due"  # past two thirds of the lifetime, or past the CA's suggested time
    EXPIRED = "expired"
    VALID = "valid"  # nothing to do before renew_at


@dataclass(frozen=True, slots=True)
class RenewalDecision:
    """What to do with one certificate at ``now``: ``renew`` now or at ``renew_at``; ``alert``
    when it expires within :data:`ALERT_WINDOW` (or has); ``days_left`` until ``not_after``."""

    reason: Reason
    renew_at: datetime
    alert: bool = False
    days_left: float | None = None

    @property
    def renew(self) -> bool:
        return self.reason is not Reason.VALID


def decide(
    now: datetime,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    *,
    suggested: datetime | None = None,
) -> RenewalDecision:
    """The decision for a certificate valid from ``not_before`` to ``not_after`` (both ``None``:
    there is none) at ``now``; ``suggested`` is the CA's ARI renewal time when it offers one."""
    if not_before is None or not_after is None:
        return RenewalDecision(Reason.MISSING, now)
    renew_at = not_before + (not_after - not_before) * 2 / 3
    if suggested is not None and suggested < renew_at:
        renew_at = suggested
    left = not_after - now
    days_left = left.total_seconds() / 86400
    alert = left <= ALERT_WINDOW
    if now >= not_after:
        return RenewalDecision(Reason.EXPIRED, now, alert=True, days_left=days_left)
    if now >= renew_at:
        return RenewalDecision(Reason.DUE, renew_at, alert=alert, days_left=days_left)
    return RenewalDecision(Reason.VALID, renew_at, alert=alert, days_left=days_left)


def retry_delay(failures: int, key: str = "") -> timedelta:
    """How long to wait after the ``failures``-th consecutive failure (1, 2, ...) before the next
    attempt: :data:`RETRY_DELAY` doubled per failure, capped at :data:`MAX_RETRY_DELAY`, plus a
    spread of up to 10 % derived from ``key`` (the name), the same every time."""
    if failures < 1:
        return timedelta(0)
    base = min(RETRY_DELAY * (1 << min(failures - 1, 30)), MAX_RETRY_DELAY)
    fraction = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") / 2**32 if key else 0.0
    return base + base * (_SPREAD * fraction)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Consecutive failures of one thing (a name's orders, or reaching the CA at all), the last
    error and when the next attempt may start; :meth:`failed` and :meth:`succeeded` return the
    next state."""

    failures: int = 0
    next_attempt: datetime | None = None
    error: str = ""

    def ready(self, now: datetime) -> bool:
        """May an attempt start at ``now``?"""
        return self.next_attempt is None or now >= self.next_attempt

    def failed(self, now: datetime, error: str, key: str = "") -> Backoff:
        failures = self.failures + 1
        return Backoff(failures, now + retry_delay(failures, key), error)

    @staticmethod
    def succeeded() -> Backoff:
        return Backoff()
