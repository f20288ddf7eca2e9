"""The roll-up arithmetic every store shares, with no database in it.

A store keeps five roll-up tables in step with its rows (see :mod:`mtasts.store.models`):
sessions per (domain, day, policy type), per (domain, sender), failed sessions per (domain,
sender, kind, value), per (domain, sender, day) the reports, their sessions and the sessions
they counted twice (:func:`report_domains`; the day and sender totals keep those too), and
failed sessions per (domain, sender, kind, value, day), from which a period is summed. A
freshly stored report adds to them by the rules of :data:`DAY_RULES`, :data:`SENDER_RULES`,
:data:`FAILURE_RULES`, :data:`REPORTER_RULES` and :data:`FAILURE_DAY_RULES`:
counts add up, saturating at 2^63-1 like the
64-bit columns; first days and first-seen keep the least, last days the greatest (``None``: no
value yet). The SQL stores apply the same rules in their upserts; the in-memory store applies
them here. ``''`` stands for an absent policy domain or value, as in the tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date, timedelta
from typing import Any, Final, Literal, TypeAlias

from mtasts.core.tlsrpt_report import FailureDetail, PolicyResult, PolicyType, TlsRptReport
from mtasts.store.interface import DaySums, DomainSums

__all__ = [
    "DAY_RULES",
    "EPOCH",
    "FAILURE_DAY_RULES",
    "FAILURE_RULES",
    "KINDS",
    "MAX_COUNT",
    "REPORTER_RULES",
    "SEEN_SHIFT",
    "SENDER_RULES",
    "RollupDelta",
    "counted_twice",
    "day_sums",
    "detail_values",
    "merge",
    "report_domains",
    "rollup_delta",
    "tlsa_domains",
]

MAX_COUNT: Final = 2**63 - 1
EPOCH: Final = date(1970, 1, 1)
SEEN_SHIFT: Final = 40  # first_seen = (days since 1970) << 40 | failure id
KINDS: Final = ("result_type", "sending_ip", "mx", "reason")

Rule: TypeAlias = Literal["add", "least", "greatest"]
# the values of each table in column order (the twice_* columns: sessions counted twice)
DAY_RULES: Final[tuple[Rule, ...]] = ("add",) * 4  # successful, failed, twice_successful, twice_failed
# successful, failed, first_failed, last_failed, twice_successful, twice_failed, reports
SENDER_RULES: Final[tuple[Rule, ...]] = ("add", "add", "least", "greatest", "add", "add", "add")
FAILURE_RULES: Final[tuple[Rule, ...]] = ("add", "least", "greatest", "least")  # failed, first, last, seen
REPORTER_RULES: Final[tuple[Rule, ...]] = ("add",) * 5  # reports, twice_successful, twice_failed, successful, failed
FAILURE_DAY_RULES: Final[tuple[Rule, ...]] = ("add", "least")  # failed, first_seen

Table: TypeAlias = dict[tuple[Any, ...], list[Any]]
RollupDelta: TypeAlias = tuple[Table, Table, Table, Table, Table]
"""What some reports add to the day, sender, failure, reporter-day and failure-day tables:
key -> values (column order)."""


def detail_values(detail: FailureDetail) -> tuple[str, str, str, str | None]:
    """The value of each of :data:`KINDS` for one failure detail (``None``: no ``reason`` row)."""
    return (
        str(detail.result_type),
        detail.sending_mta_ip or "",
        detail.receiving_mx_hostname or detail.receiving_ip or "",
        detail.failure_reason_code or None,
    )


def merge(table: Table, key: tuple[Any, ...], values: Sequence[Any], rules: Sequence[Rule]) -> None:
    """Merge one row of values into ``table`` by ``rules`` (see the module)."""
    known = table.get(key)
    if known is None:
        table[key] = list(values)
        return
    for index, (rule, value) in enumerate(zip(rules, values, strict=True)):
        old = known[index]
        if rule == "add":
            known[index] = min(old + value, MAX_COUNT)
        elif old is None or value is None:
            known[index] = value if old is None else old
        else:
            known[index] = min(old, value) if rule == "least" else max(old, value)


def report_domains(report: TlsRptReport) -> dict[str, list[int]]:
    """What one report adds to the reporter-day table, per policy domain (``''``: none): one
    report, the sessions it counted twice and all its sessions, ``[1, twice_successful,
    twice_failed, successful, failed]``.

    Sessions are counted twice when the report holds both a ``tlsa`` and an ``sts`` result for
    the same policy domain: some reporters (Microsoft) evaluate each session against the
    domain's DANE and MTA-STS policies and list it under both. The ``sts`` results of that
    domain are then the double: the analysis counts the sessions once, by the ``tlsa`` result
    (docs/report.md, "Sessions counted once"). Per report, not per day: only one report
    says that its two results are the same sessions."""
    domains: dict[str, list[int]] = {}
    tlsa = tlsa_domains(report)
    for policy in report.policies:
        domain = policy.policy_domain or ""
        entry = domains.get(domain)
        if entry is None:
            entry = domains[domain] = [1, 0, 0, 0, 0]
        ok, failed = policy.total_successful, policy.total_failure
        if policy.policy_type is PolicyType.STS and domain in tlsa:
            entry[1] = min(entry[1] + ok, MAX_COUNT)
            entry[2] = min(entry[2] + failed, MAX_COUNT)
        entry[3] = min(entry[3] + ok, MAX_COUNT)
        entry[4] = min(entry[4] + failed, MAX_COUNT)
    return domains


def counted_twice(policy: PolicyResult, tlsa: set[str]) -> bool:
    """Whether ``policy`` lists sessions that its report also lists under a ``tlsa`` result
    for the same domain (``tlsa``: :func:`tlsa_domains` of the report; see :func:`report_domains`)."""
    return policy.policy_type is PolicyType.STS and (policy.policy_domain or "") in tlsa


def tlsa_domains(report: TlsRptReport) -> set[str]:
    """The policy domains (``''``: none) for which ``report`` holds a ``tlsa`` result."""
    return {policy.policy_domain or "" for policy in report.policies if policy.policy_type is PolicyType.TLSA}


def rollup_delta(reports: Iterable[TlsRptReport], failure_ids: Iterable[int]) -> RollupDelta:
    """What freshly stored ``reports`` add to the roll-up tables, summed per key here first;
    ``failure_ids``: the stored id of each of their failure details, in order."""
    days: Table = {}
    senders: Table = {}
    found: Table = {}
    reporters: Table = {}
    found_days: Table = {}
    ids = iter(failure_ids)
    for report in reports:
        day, org = report.day, report.organization_name
        for domain, values in report_domains(report).items():
            merge(reporters, (domain, org, day), values, REPORTER_RULES)
            merge(senders, (domain, org), (0, 0, None, None, 0, 0, 1), SENDER_RULES)  # one report more
        day_number = (day - EPOCH).days << SEEN_SHIFT
        tlsa = tlsa_domains(report)
        for policy in report.policies:
            domain = policy.policy_domain or ""
            ok, failed = policy.total_successful, policy.total_failure
            twice_ok, twice_failed = (ok, failed) if counted_twice(policy, tlsa) else (0, 0)
            merge(days, (domain, day, policy.policy_type.value), (ok, failed, twice_ok, twice_failed), DAY_RULES)
            failed_day = day if failed else None
            merge(senders, (domain, org), (ok, failed, failed_day, failed_day, twice_ok, twice_failed, 0), SENDER_RULES)
            for detail in policy.failure_details:
                seen = day_number + next(ids)
                count = detail.failed_session_count
                for kind, value in zip(KINDS, detail_values(detail), strict=True):
                    if value is None:
                        continue
                    # merge(found, ..., FAILURE_RULES) and merge(found_days, ..., FAILURE_DAY_RULES)
                    # written out: this is the hot loop
                    key = (domain, org, kind, value)
                    known = found.get(key)
                    if known is None:
                        found[key] = [count, day, day, seen]
                    else:
                        total = known[0] + count
                        known[0] = total if total < MAX_COUNT else MAX_COUNT
                        if day < known[1]:
                            known[1] = day
                        elif day > known[2]:
                            known[2] = day
                        if seen < known[3]:  # noqa: PLR1730 (a comparison costs less than min())
                            known[3] = seen
                    day_key = (domain, org, kind, value, day)
                    known = found_days.get(day_key)
                    if known is None:
                        found_days[day_key] = [count, seen]
                    else:
                        total = known[0] + count
                        known[0] = total if total < MAX_COUNT else MAX_COUNT
                        if seen < known[1]:  # noqa: PLR1730
                            known[1] = seen
    return days, senders, found, reporters, found_days


def sorted_rows(table: Table) -> Iterator[tuple[Any, ...]]:
    """The rows of one table of a delta (key, then values), by key: concurrent writers then
    lock the keys in the same order, and cannot deadlock on them."""
    for key, values in sorted(table.items()):
        yield (*key, *values)


def day_sums(rows: Iterable[Sequence[Any]], until: date | None, window: int) -> DaySums:
    """What :meth:`~mtasts.store.interface.ReportStoreProtocol.day_sums` says of the rows of a
    day-totals table (domain, day, policy type, successful, failed, twice successful, twice
    failed; ``''``: no domain), summed here (the in-memory store; the SQL stores sum the same
    in the database). Counted once as :func:`mtasts.report.analysis.count_once` does: what a
    day counted twice comes off the ``sts`` row of that domain and day, down to 0."""
    table = list(rows)
    twice = {(key, day): (ok, bad) for key, day, _, _, _, ok, bad in table if ok or bad}
    domains: dict[str, list[Any]] = {}
    daily: dict[date, list[int]] = {}
    kinds: dict[str, list[int]] = {}
    double = [0, 0]
    for key, day, kind, reported_ok, reported_bad, twice_ok, twice_bad in table:
        pair = kinds.setdefault(kind, [0, 0])
        pair[0] += reported_ok
        pair[1] += reported_bad
        double[0] += twice_ok
        double[1] += twice_bad
        ok, bad = reported_ok, reported_bad
        minus = twice.get((key, day)) if kind == "sts" else None
        if minus is not None:
            ok, bad = max(ok - minus[0], 0), max(bad - minus[1], 0)
        entry = domains.setdefault(key, [0, 0, day, False])
        entry[0] += ok
        entry[1] += bad
        entry[2] = max(entry[2], day)
        entry[3] = entry[3] or kind == "sts"
        pair = daily.setdefault(day, [0, 0])
        pair[0] += ok
        pair[1] += bad
    sts: dict[str, list[int]] = {}
    for key, day, kind, ok, bad, _, _ in table:
        end = until or domains[key][2]
        if kind == "sts" and end - timedelta(days=window - 1) <= day <= end:
            pair = sts.setdefault(key, [0, 0])
            pair[0] += ok
            pair[1] += bad
    return DaySums(
        tuple(
            DomainSums(key or None, ok, bad, newest, has_sts, *sts.get(key, (0, 0)))
            for key, (ok, bad, newest, has_sts) in domains.items()
        ),
        tuple((day, ok, bad) for day, (ok, bad) in daily.items()),
        tuple((kind, ok, bad) for kind, (ok, bad) in kinds.items()),
        (double[0], double[1]),
        until,
        window,
    )
