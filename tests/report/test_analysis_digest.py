"""The digest's silence alerts, on hand-made rows: who "used to send daily", when silence
starts and stops counting, and what the digest says with no reports at all."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

import pytest

from mtasts.core.tlsrpt_report import PolicyRow
from mtasts.report.analysis import AlertKind, daily_threshold, digest

UNTIL = date(2026, 12, 2)


def rows(org: str, offsets: Iterable[int], domain: str | None = "a.example") -> list[PolicyRow]:
    """One report of ``org`` on each day ``UNTIL - offset``."""
    return [PolicyRow(UNTIL - timedelta(days=n), org, "sts", domain, 100, 0) for n in offsets]


def kinds(policies: list[PolicyRow], **options: int) -> list[tuple[AlertKind, str | None, str | None, int | None]]:
    result = digest(policies, [], until=UNTIL, **options)
    return [(a.kind, a.policy_domain, a.organization_name, a.days_silent) for a in result.alerts]


@pytest.mark.parametrize(("days", "needed"), [(7, 5), (14, 10), (3, 3), (1, 1), (6, 5)])
def test_daily_means_five_of_seven_rounded_up(days: int, needed: int) -> None:
    assert daily_threshold(days) == needed


def test_a_daily_reporter_that_stopped_is_flagged_while_the_domain_still_gets_reports() -> None:
    google = rows("Google", range(10))  # every day up to today
    microsoft = rows("Microsoft", range(3, 12))  # daily, last report 3 days ago
    assert kinds(google + microsoft) == [(AlertKind.SILENT_REPORTER, "a.example", "Microsoft", 3)]
    result = digest(google + microsoft, [], until=UNTIL)
    (alert,) = result.alerts
    assert alert.last_report == date(2026, 11, 29)
    assert alert.message == (
        "Microsoft stopped reporting for a.example: no report for 3 days; it reported on 7 of the 7 days to 2026-11-29"
    )


@pytest.mark.parametrize(
    ("last", "flagged"),
    [(2, False), (3, True), (9, True), (10, False)],  # silent_days 3, baseline 7: flagged for 3..9 days
)
def test_silence_counts_from_silent_days_until_the_reporter_is_taken_as_gone(last: int, flagged: bool) -> None:
    policies = rows("Google", range(20)) + rows("Microsoft", range(last, last + 7))
    assert bool(kinds(policies)) is flagged


@pytest.mark.parametrize(("days_reported", "flagged"), [(5, True), (4, False)])
def test_used_to_send_daily_is_five_of_the_seven_days_to_its_last_report(days_reported: int, flagged: bool) -> None:
    # the last report 4 days ago, and days_reported - 1 more among the 6 days before it
    microsoft = rows("Microsoft", [4, *range(6, 6 + days_reported - 1)])
    assert bool(kinds(rows("Google", range(10)) + microsoft)) is flagged


def test_a_weekly_reporter_is_not_daily() -> None:
    weekly = rows("Weekly Corp", [5, 12, 19, 26])
    assert kinds(rows("Google", range(30)) + weekly) == []


def test_no_report_at_all_names_the_domain_and_replaces_its_reporter_alerts() -> None:
    quiet = rows("Google", range(4, 20)) + rows("Microsoft", range(5, 20))
    busy = rows("Google", range(10), "b.example")
    assert kinds(quiet + busy) == [(AlertKind.NO_REPORTS, "a.example", None, 4)]
    (alert,) = digest(quiet + busy, [], until=UNTIL).alerts
    assert alert.message == "a.example: no report at all for 4 days (the newest covers 2026-11-28)"


def test_no_report_at_all_stands_as_long_as_the_silence() -> None:
    assert kinds(rows("Google", range(200, 300))) == [(AlertKind.NO_REPORTS, "a.example", None, 200)]


def test_silent_days_sets_the_threshold_and_one_day_is_singular() -> None:
    policies = rows("Google", range(1, 10))
    assert kinds(policies) == []
    assert kinds(policies, silent_days=1) == [(AlertKind.NO_REPORTS, "a.example", None, 1)]
    (alert,) = digest(policies, [], until=UNTIL, silent_days=1).alerts
    assert "no report at all for 1 day " in alert.message


def test_reports_after_until_do_not_hide_a_silence() -> None:
    policies = rows("Google", range(5, 15)) + rows("Google", range(-3, 0))  # "future" rows: after --until
    assert kinds(policies) == [(AlertKind.NO_REPORTS, "a.example", None, 5)]


def test_reports_without_a_domain_are_watched_too() -> None:
    assert kinds(rows("Google", range(6, 9), None)) == [(AlertKind.NO_REPORTS, None, None, 6)]
    assert "(none): no report at all for 6 days" in digest(rows("Google", range(6, 9), None), [], until=UNTIL).to_text()


def test_an_empty_store_has_nothing_to_miss() -> None:
    result = digest([], [], until=UNTIL)
    assert result.alerts == ()
    assert result.to_text().splitlines()[-1] == "No reports stored yet."
    assert result.to_dict()["last_reports"] == []


def test_the_json_keeps_its_keys_and_adds_the_silence() -> None:
    data = digest(rows("Google", range(3, 10)), [], until=UNTIL, days=2).to_dict()
    assert {"since", "until", "baseline_since", "domains", "alerts", "failing_senders"} <= data.keys()
    assert (data["since"], data["until"], data["silent_days"]) == ("2026-12-01", "2026-12-02", 3)
    (alert,) = data["alerts"]
    assert alert == {
        "kind": "no-reports",
        "policy_domain": "a.example",
        "organization_name": None,
        "message": "a.example: no report at all for 3 days (the newest covers 2026-11-29)",
        "last_report": "2026-11-29",
        "days_silent": 3,
    }
    assert data["last_reports"] == [{"policy_domain": "a.example", "last_report": "2026-11-29", "days_silent": 3}]
