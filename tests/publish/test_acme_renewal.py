"""The renewal rules (:mod:`mtasts.publish.renewal`), one row per rule, the time passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mtasts.publish.renewal import MAX_RETRY_DELAY, Backoff, Reason, decide, retry_delay

ISSUED = datetime(2026, 1, 1, tzinfo=UTC)
EXPIRES = ISSUED + timedelta(days=90)
TWO_THIRDS = ISSUED + timedelta(days=60)


@pytest.mark.parametrize(
    ("now", "reason", "alert"),
    [
        pytest.param(ISSUED, Reason.VALID, False, id="just-issued"),
        pytest.param(TWO_THIRDS - timedelta(seconds=1), Reason.VALID, False, id="just-before-two-thirds"),
        pytest.param(TWO_THIRDS, Reason.DUE, False, id="at-two-thirds"),
        pytest.param(EXPIRES - timedelta(days=14, seconds=1), Reason.DUE, False, id="15-days-left"),
        pytest.param(EXPIRES - timedelta(days=14), Reason.DUE, True, id="14-days-left-alert"),
        pytest.param(EXPIRES - timedelta(seconds=1), Reason.DUE, True, id="last-second"),
        pytest.param(EXPIRES, Reason.EXPIRED, True, id="expired"),
    ],
)
def test_renew_at_two_thirds_and_alert_within_14_days(now: datetime, reason: Reason, alert: bool) -> None:
    decision = decide(now, ISSUED, EXPIRES)
    assert (decision.reason, decision.alert, decision.renew) == (reason, alert, reason is not Reason.VALID)
    if reason is not Reason.EXPIRED:
        assert decision.renew_at == TWO_THIRDS
    assert decision.days_left == pytest.approx((EXPIRES - now).total_seconds() / 86400)


def test_a_missing_certificate_is_ordered_now() -> None:
    decision = decide(ISSUED)
    assert (decision.reason, decision.renew, decision.renew_at, decision.alert) == (Reason.MISSING, True, ISSUED, False)


def test_the_cas_suggested_time_wins_only_when_earlier() -> None:
    early = ISSUED + timedelta(days=30)
    assert decide(ISSUED + timedelta(days=31), ISSUED, EXPIRES, suggested=early).reason is Reason.DUE
    assert decide(ISSUED, ISSUED, EXPIRES, suggested=early).renew_at == early
    late = ISSUED + timedelta(days=80)
    assert decide(ISSUED, ISSUED, EXPIRES, suggested=late).renew_at == TWO_THIRDS


def test_the_lifetime_sets_the_time_not_a_fixed_number_of_days() -> None:
    short_lived = ISSUED + timedelta(days=6)  # a 6-day certificate renews after 4 days
    assert decide(ISSUED + timedelta(days=4), ISSUED, short_lived).reason is Reason.DUE
    assert decide(ISSUED + timedelta(days=3), ISSUED, short_lived).reason is Reason.VALID


def test_retry_delay_doubles_up_to_six_hours() -> None:
    assert [retry_delay(n).total_seconds() for n in range(1, 6)] == [60, 120, 240, 480, 960]
    assert retry_delay(9) == timedelta(minutes=256)
    assert retry_delay(10) == MAX_RETRY_DELAY
    assert retry_delay(1000) == MAX_RETRY_DELAY
    assert retry_delay(0) == timedelta(0)


def test_the_spread_per_name_is_below_ten_percent_and_stable() -> None:
    delays = {name: retry_delay(3, name) for name in (f"mta-sts.d{i}.example" for i in range(50))}
    assert all(timedelta(minutes=4) <= d < timedelta(minutes=4) * 1.1 for d in delays.values())
    assert len(set(delays.values())) > 40  # names that failed together come back apart
    assert retry_delay(3, "mta-sts.d1.example") == delays["mta-sts.d1.example"]


def test_backoff_counts_consecutive_failures_and_resets_on_success() -> None:
    start = Backoff()
    assert start.ready(ISSUED)
    once = start.failed(ISSUED, "refused")
    assert (once.failures, once.next_attempt, once.error) == (1, ISSUED + timedelta(minutes=1), "refused")
    assert not once.ready(ISSUED + timedelta(seconds=59))
    assert once.ready(ISSUED + timedelta(minutes=1))
    twice = once.failed(ISSUED + timedelta(minutes=1), "refused again")
    assert twice.next_attempt == ISSUED + timedelta(minutes=3)
    assert Backoff.succeeded() == Backoff()
