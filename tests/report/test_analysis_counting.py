"""Sessions counted once: a report that lists the same sessions under both a ``tlsa`` and an
``sts`` result for one policy domain counts them once, by the ``tlsa`` result, in every summary
(docs/report.md, "Sessions counted once"); the views by policy type stay as reported."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from mtasts.core.tlsrpt_report import Rollup, TlsRptReport, parse_report
from mtasts.report.analysis import (
    ReadinessVerdict,
    count_once,
    failing_senders_rollup,
    readiness_rollup,
    summarise_rollup,
)
from mtasts.store.memory import MemoryReportStore

DAY = date(2026, 11, 20)
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)

# random.net: Microsoft listed 100 sessions (3 failed) under both policies; Google 50 under sts only
ROLLUP = Rollup(
    days=(
        ("random.net", DAY, "sts", 147, 3),
        ("random.net", DAY, "tlsa", 97, 3),
        ("other.example", DAY, "sts", 5, 1),
    ),
    senders=(
        ("random.net", "Microsoft Corporation", 194, 6, DAY, DAY),
        ("random.net", "Google", 50, 0, None, None),
        ("other.example", "Google", 5, 1, DAY, DAY),
    ),
    failures=(
        ("random.net", "Microsoft Corporation", "result_type", "certificate-expired", 3, DAY, DAY, 1),
        ("other.example", "Google", "result_type", "starttls-not-supported", 1, DAY, DAY, 2),
    ),
    days_twice=(("random.net", DAY, 97, 3),),
    senders_twice=(("random.net", "Microsoft Corporation", 97, 3),),
)


def test_count_once_takes_the_sts_double_out_of_days_and_senders() -> None:
    once = count_once(ROLLUP)
    assert once.days == (
        ("random.net", DAY, "sts", 50, 0),
        ("random.net", DAY, "tlsa", 97, 3),
        ("other.example", DAY, "sts", 5, 1),
    )
    assert once.senders[0] == ("random.net", "Microsoft Corporation", 97, 3, DAY, DAY)
    assert once.senders[1:] == ROLLUP.senders[1:]
    assert once.failures == ROLLUP.failures  # the failure details stay as reported
    assert count_once(once) == once  # nothing is left counted twice
    plain = Rollup(days=ROLLUP.days, senders=ROLLUP.senders)
    assert count_once(plain) is plain


def test_the_summary_counts_once_and_keeps_the_policy_types_as_reported() -> None:
    random_net, other = _by_domain(summarise_rollup(ROLLUP))
    assert (random_net.totals.successful, random_net.totals.failed) == (147, 3)  # not 244 and 6
    assert [(p.successful, p.failed) for p in random_net.daily] == [(147, 3)]
    assert (random_net.double_counted.successful, random_net.double_counted.failed) == (97, 3)
    assert random_net.by_policy_type["sts"].successful == 147  # as reported
    assert random_net.by_policy_type["tlsa"].successful == 97
    assert random_net.by_organization["Microsoft Corporation"].successful == 97
    assert random_net.by_result_type == {"certificate-expired": 3}
    data = random_net.to_dict()
    assert (data["total_successful"], data["total_failure"]) == (147, 3)
    assert data["double_counted"] == {"total_successful": 97, "total_failure": 3}
    assert data["by_policy_type"]["sts"] == {"total_successful": 147, "total_failure": 3}
    assert other.double_counted.successful == 0


def _by_domain(summaries: list[Any]) -> tuple[Any, Any]:
    found = {s.policy_domain: s for s in summaries}
    return found["random.net"], found["other.example"]


def test_the_senders_to_work_with_count_once() -> None:
    issues = {i.organization_name: i for i in failing_senders_rollup(ROLLUP) if i.policy_domain == "random.net"}
    assert (issues["Microsoft Corporation"].failed_sessions, issues["Microsoft Corporation"].successful_sessions) == (
        3,
        97,
    )


def test_readiness_reads_the_sts_sessions_as_reported() -> None:
    verdicts = {v.policy_domain: v for v in readiness_rollup(ROLLUP)}
    assert (verdicts["random.net"].totals.successful, verdicts["random.net"].totals.failed) == (147, 3)
    assert verdicts["random.net"].verdict is ReadinessVerdict.NOT_READY


def report(org: str, report_id: str, *policies: tuple[str, str, int, int]) -> TlsRptReport:
    return parse_report(
        json.dumps(
            {
                "organization-name": org,
                "date-range": {"start-datetime": "2026-11-20T00:00:00Z", "end-datetime": "2026-11-20T23:59:59Z"},
                "contact-info": "tlsrpt@example.net",
                "report-id": report_id,
                "policies": [
                    {
                        "policy": {"policy-type": kind, "policy-domain": domain},
                        "summary": {"total-successful-session-count": ok, "total-failure-session-count": bad},
                    }
                    for kind, domain, ok, bad in policies
                ],
            }
        ).encode()
    )


def test_a_stored_report_with_both_results_counts_once() -> None:
    """The rule is per report: Microsoft's report holds both results for random.net; a second
    organisation's separate sts and tlsa reports for the same day are two reports, so both count."""
    with MemoryReportStore() as store:
        store.add_reports(
            [
                report("Microsoft Corporation", "m-1", ("tlsa", "random.net", 2, 0), ("sts", "random.net", 2, 0)),
                report("Microsoft Corporation", "m-2", ("sts", "other.example", 4, 0), ("tlsa", "random.net", 1, 0)),
                report("Google", "g-1", ("sts", "random.net", 10, 1)),
                report("Google", "g-2", ("tlsa", "random.net", 5, 0)),
            ],
            source="t",
            now=NOW,
        )
        summaries = {s.policy_domain: s for s in summarise_rollup(store.rollup())}
    random_net = summaries["random.net"]
    assert (random_net.totals.successful, random_net.totals.failed) == (2 + 1 + 10 + 5, 1)
    assert random_net.double_counted.successful == 2
    assert summaries["other.example"].totals.successful == 4  # its sts result has no tlsa beside it
    assert random_net.by_policy_type["sts"].successful == 12
