"""The roll-up arithmetic every store shares, with no database in it.

A store keeps four roll-up tables in step with its rows (see :mod:`mtasts.store.models`):
sessions per (domain, day, policy type), per (domain, sender), failed sessions per (domain,
sender, kind, value), and per (domain, sender, day) the reports and the sessions they counted
twice (:func:`report_domains`). A freshly stored report adds to them by the rules of
:data:`DAY_RULES`, :data:`SENDER_RULES`, :data:`FAILURE_RULES` and :data:`REPORTER_RULES`:
counts add up, saturating at 2^63-1 like the
64-bit columns; first days and first-seen keep the least, last days the greatest (``None``: no
value yet). The SQL stores apply the same rules in their upserts; the in-memory store applies
them here. ``''`` stands for an absent policy domain or value, as in the tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import Any, Final, Literal, TypeAlias

from mtasts.core.tlsrpt_report import FailureDetail, PolicyType, TlsRptReport

__all__ = [
    "DAY_RULES",
    "EPOCH",
    "FAILURE_RULES",
    "KINDS",
    "MAX_COUNT",
    "REPORTER_RULES",
    "SEEN_SHIFT",
    "SENDER_RULES",
    "RollupDelta",
    "detail_values",
    "merge",
    "report_domains",
    "rollup_delta",
]

MAX_COUNT: Final = 2**63 - 1
EPOCH: Final = date(1970, 1, 1)
SEEN_SHIFT: Final = 40  # first_seen = (days since 1970) << 40 | failure id
KINDS: Final = ("result_type", "sending_ip", "mx", "reason")

Rule: TypeAlias = Literal["add", "least", "greatest"]
DAY_RULES: Final[tuple[Rule, ...]] = ("add", "add")  # successful, failed
SENDER_RULES: Final[tuple[Rule, ...]] = ("add", "add", "least", "greatest")  # ..., first_failed, last_failed
FAILURE_RULES: Final[tuple[Rule, ...]] = ("add", "least", "greatest", "least")  # failed, first, last, seen
REPORTER_RULES: Final[tuple[Rule, ...]] = ("add", "add", "add")  # reports, twice_successful, twice_failed

Table: TypeAlias = dict[tuple[Any, ...], list[Any]]
RollupDelta: TypeAlias = tuple[Table, Table, Table, Table]
"""What some reports add to the day, sender, failure and reporter-day tables: key -> values
(column order)."""


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
    report, and the sessions it counted twice, ``[1, successful, failed]``.

    Sessions are counted twice when the report holds both a ``tlsa`` and an ``sts`` result for
    the same policy domain: some reporters (Microsoft) evaluate each session against the
    domain's DANE and MTA-STS policies and list it under both. The ``sts`` results of that
    domain are then the double: the analysis counts the sessions once, by the ``tlsa`` result
    (docs/report.md, "Sessions counted once"). Per report, not per day: only one report
    says that its two results are the same sessions."""
    domains: dict[str, list[int]] = {}
    tlsa = {policy.policy_domain or "" for policy in report.policies if policy.policy_type is PolicyType.TLSA}
    for policy in report.policies:
        domain = policy.policy_domain or ""
        entry = domains.get(domain)
        if entry is None:
            entry = domains[domain] = [1, 0, 0]
        if policy.policy_type is PolicyType.STS and domain in tlsa:
            entry[1] = min(entry[1] + policy.total_successful, MAX_COUNT)
            entry[2] = min(entry[2] + policy.total_failure, MAX_COUNT)
    return domains


def rollup_delta(reports: Iterable[TlsRptReport], failure_ids: Iterable[int]) -> RollupDelta:
    """What freshly stored ``reports`` add to the roll-up tables, summed per key here first;
    ``failure_ids``: the stored id of each of their failure details, in order."""
    days: Table = {}
    senders: Table = {}
    found: Table = {}
    reporters: Table = {}
    ids = iter(failure_ids)
    for report in reports:
        day, org = report.day, report.organization_name
        for domain, values in report_domains(report).items():
            merge(reporters, (domain, org, day), values, REPORTER_RULES)
        day_number = (day - EPOCH).days << SEEN_SHIFT
        for policy in report.policies:
            domain = policy.policy_domain or ""
            ok, failed = policy.total_successful, policy.total_failure
            merge(days, (domain, day, policy.policy_type.value), (ok, failed), DAY_RULES)
            failed_day = day if failed else None
            merge(senders, (domain, org), (ok, failed, failed_day, failed_day), SENDER_RULES)
            for detail in policy.failure_details:
                seen = day_number + next(ids)
                count = detail.failed_session_count
                for kind, value in zip(KINDS, detail_values(detail), strict=True):
                    if value is None:
                        continue
                    key = (domain, org, kind, value)
                    known = found.get(key)
                    if known is None:
                        found[key] = [count, day, day, seen]
                        continue
                    # merge(found, key, ..., FAILURE_RULES) written out: this is the hot loop
                    total = known[0] + count
                    known[0] = total if total < MAX_COUNT else MAX_COUNT
                    if day < known[1]:
                        known[1] = day
                    elif day > known[2]:
                        known[2] = day
                    if seen < known[3]:  # noqa: PLR1730 (a comparison costs less than min())
                        known[3] = seen
    return days, senders, found, reporters


def sorted_rows(table: Table) -> Iterator[tuple[Any, ...]]:
    """The rows of one table of a delta (key, then values), by key: concurrent writers then
    lock the keys in the same order, and cannot deadlock on them."""
    for key, values in sorted(table.items()):
        yield (*key, *values)
