"""Analysis: pure functions over rows, checked on hand-made rows and on the sample corpus."""

from __future__ import annotations

from datetime import date

import pytest

from mtasts.core.tlsrpt_report import FailureRow, PolicyRow
from mtasts.report.analysis import (
    DayPoint,
    ReadinessVerdict,
    failing_senders,
    readiness,
    sparkline,
    success_rate,
    summarise,
)

D1, D2, D3 = date(2026, 11, 26), date(2026, 11, 27), date(2026, 11, 28)
POLICIES = [
    PolicyRow(D1, "Google", "sts", "example.com", 900, 0),
    PolicyRow(D2, "Google", "sts", "example.com", 950, 50),
    PolicyRow(D2, "Microsoft", "sts", "example.com", 10, 5),
    PolicyRow(D3, "Microsoft", "tlsa", "example.com", 7, 0),
    PolicyRow(D3, "Google", "no-policy-found", "other.example", 40, 0),
]
FAILURES = [
    FailureRow(D2, "Google", "sts", "example.com", "certificate-expired", 50, "192.0.2.1", "mx1.example.com"),
    FailureRow(D2, "Microsoft", "sts", "example.com", "sts-policy-fetch-error", 3, None, None, None, "HTTP 404"),
    FailureRow(D2, "Microsoft", "sts", "example.com", "sts-policy-fetch-error", 2, None, None, None, "timeout"),
]


def test_success_rate() -> None:
    assert success_rate(0, 0) is None
    assert success_rate(3, 1) == 0.75


def test_summary_per_domain_day_org_and_result_type() -> None:
    example, other = summarise(POLICIES, FAILURES)
    assert example.policy_domain == "example.com"
    assert (example.totals.successful, example.totals.failed) == (1867, 55)
    assert [(p.day, p.successful, p.failed) for p in example.daily] == [(D1, 900, 0), (D2, 960, 55), (D3, 7, 0)]
    assert example.by_result_type == {"certificate-expired": 50, "sts-policy-fetch-error": 5}
    assert list(example.by_organization) == ["Google", "Microsoft"]  # most failures first
    assert example.by_organization["Microsoft"].failed == 5
    assert example.by_receiving_mx == {"mx1.example.com": 50, "(unknown)": 5}
    assert example.by_sending_ip == {"192.0.2.1": 50, "(unknown)": 5}
    assert example.by_policy_type["tlsa"].successful == 7
    assert other.totals.rate == 1.0
    data = example.to_dict()
    assert data["by_organization"]["Google"] == {"total_successful": 1850, "total_failure": 50}
    assert data["success_rate"] == pytest.approx(1867 / 1922)


def test_senders_to_work_with_say_who_how_and_since_when() -> None:
    google, microsoft = failing_senders(POLICIES, FAILURES)
    assert (google.organization_name, google.failed_sessions, google.first_failure) == ("Google", 50, D2)
    assert google.result_types == {"certificate-expired": 50}
    assert google.sending_ips == {"192.0.2.1": 50}
    assert "renew" in google.advice
    assert microsoft.result_types == {"sts-policy-fetch-error": 5}
    assert microsoft.reasons == ("HTTP 404", "timeout")
    assert "policy" in microsoft.advice


def test_unregistered_result_type_advice() -> None:
    rows = [PolicyRow(D1, "X", "sts", "a.example", 0, 1)]
    (issue,) = failing_senders(rows, [FailureRow(D1, "X", "sts", "a.example", "Testing", 1)])
    assert "unregistered" in issue.advice


@pytest.mark.parametrize(
    ("ok", "failed", "verdict"),
    [
        (9990, 10, ReadinessVerdict.READY),
        (995, 5, ReadinessVerdict.ALMOST),
        (90, 10, ReadinessVerdict.NOT_READY),
        (3, 0, ReadinessVerdict.TOO_FEW_SESSIONS),
    ],
)
def test_readiness_table(ok: int, failed: int, verdict: ReadinessVerdict) -> None:
    (result,) = readiness([PolicyRow(D3, "G", "sts", "a.example", ok, failed)], days=30)
    assert result.verdict is verdict
    assert result.until == D3


def test_readiness_window_and_missing_policy() -> None:
    rows = [PolicyRow(D1, "G", "sts", "a.example", 0, 100), PolicyRow(D3, "G", "sts", "a.example", 100, 0)]
    (recent,) = readiness(rows, days=1)
    assert recent.verdict is ReadinessVerdict.READY  # the old failures are outside the window
    (stale,) = readiness(rows, until=date(2026, 12, 31), days=7)
    assert stale.verdict is ReadinessVerdict.NO_DATA
    (none,) = readiness([PolicyRow(D1, "G", "no-policy-found", "b.example", 5, 0)])
    assert none.verdict is ReadinessVerdict.NO_POLICY_SEEN


def test_sparkline_one_bar_per_day_blank_without_data() -> None:
    points = [DayPoint(D1, 1, 0), DayPoint(D3, 0, 1)]
    assert sparkline(points, width=4) == " █ ▁"
    assert sparkline([], width=4) == ""


def test_digest_flags_a_failure_spike_and_a_newly_failing_sender() -> None:
    from mtasts.report.analysis import AlertKind, digest

    week = [PolicyRow(date(2026, 11, d), "Google", "sts", "a.example", 1000, 1) for d in range(21, 28)]
    week_failures = [
        FailureRow(date(2026, 11, d), "Google", "sts", "a.example", "validation-failure", 1) for d in range(21, 28)
    ]
    today = [
        PolicyRow(D3, "Google", "sts", "a.example", 900, 1),
        PolicyRow(D3, "Yahoo", "sts", "a.example", 0, 100),
    ]
    today_failures = [
        FailureRow(D3, "Google", "sts", "a.example", "validation-failure", 1),
        FailureRow(D3, "Yahoo", "sts", "a.example", "certificate-expired", 100, "192.0.2.9"),
    ]
    result = digest(week + today, week_failures + today_failures, until=D3, days=1, baseline_days=7)
    assert [(a.kind, a.organization_name) for a in result.alerts] == [
        (AlertKind.FAILURE_SPIKE, None),
        (AlertKind.NEW_FAILING_SENDER, "Yahoo"),
    ]
    (domain,) = result.domains
    assert (domain.recent.failed, domain.baseline.failed) == (101, 7)
    text = result.to_text()
    assert "ALERTS (2)" in text
    assert "Yahoo newly fails to deliver to a.example" in text
    assert "renew" in text
    quiet = digest(week, week_failures, until=date(2026, 11, 27), days=1, baseline_days=6)
    assert quiet.alerts == ()
