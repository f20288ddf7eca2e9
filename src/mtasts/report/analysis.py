"""What the reports say: pure functions over flat rows (from the store or from parsed files).

Every analysis works on a :class:`~mtasts.core.tlsrpt_report.Rollup`, the rows summed per the
keys it reports on: :func:`rollup_rows` sums flat rows in memory, a store sums them in the
database (``ReportStoreProtocol.rollup``). The ``*_rollup`` functions take a roll-up; :func:`summarise`,
:func:`failing_senders` and :func:`readiness` take flat rows and roll them up first.

Per policy domain and day: successful and failed sessions and the success rate; per sending
organisation; per result type; per receiving MX and sending IP; the senders to work with (who
fails, how, since when, how many sessions); and whether a domain is ready for ``mode: enforce``.

Sessions are counted once (:func:`count_once`, the one rule of every summary, the CLI's and the
web dashboard's; docs/report.md, "Sessions counted once"): when a report lists the same
sessions under both a ``tlsa`` and an ``sts`` result for one policy domain, its ``sts`` result
is left out of the totals, per day, per domain and per sending organisation. What stays as
reported: the totals by policy type, the failure details, and the readiness to enforce (which
is about MTA-STS, so it reads the ``sts`` results). Only a store's roll-up knows which sessions
were counted twice (flat rows do not say which report they came from): :func:`summarise` over
flat rows counts them as reported.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final

from mtasts.core._frozen import trusted_constructor
from mtasts.core.tlsrpt_report import (
    DayTotal,
    DayTwice,
    FailureRow,
    FailureTotal,
    PolicyRow,
    ResultType,
    Rollup,
    SenderTotal,
    SenderTwice,
)
from mtasts.core.untrusted import printable
from mtasts.i18n.words import plural

if TYPE_CHECKING:
    from mtasts.store.interface import DaySums

__all__ = [
    "DAILY_SHARE",
    "RESULT_TYPE_HELP",
    "Alert",
    "AlertKind",
    "DayPoint",
    "Digest",
    "DomainDigest",
    "DomainSummary",
    "LastReport",
    "Overview",
    "Readiness",
    "ReadinessVerdict",
    "SenderIssue",
    "Totals",
    "count_once",
    "daily_threshold",
    "digest",
    "failing_senders",
    "failing_senders_rollup",
    "overview_rollup",
    "overview_sums",
    "readiness",
    "readiness_rollup",
    "readiness_sums",
    "rollup_rows",
    "sparkline",
    "success_rate",
    "summarise",
    "summarise_rollup",
]

NO_DOMAIN: Final = "(none)"

# What each registered result type means for the receiving domain, and what to do about it.
RESULT_TYPE_HELP: Final[Mapping[str, str]] = {
    ResultType.STARTTLS_NOT_SUPPORTED: "an MX did not offer STARTTLS: enable TLS on every MX",
    ResultType.CERTIFICATE_HOST_MISMATCH: "an MX certificate does not name the MX host: add the name",
    ResultType.CERTIFICATE_EXPIRED: "an MX certificate has expired: renew it",
    ResultType.CERTIFICATE_NOT_TRUSTED: "an MX certificate is not publicly trusted: use a CA-issued chain",
    ResultType.VALIDATION_FAILURE: "the sender could not validate the session: check the certificate chain",
    ResultType.TLSA_INVALID: "a TLSA record does not match the MX certificate: update the DANE records",
    ResultType.DNSSEC_INVALID: "DNSSEC validation failed for the MX or TLSA records",
    ResultType.DANE_REQUIRED: "the sender requires DANE and found no usable TLSA records",
    ResultType.STS_POLICY_FETCH_ERROR: "the sender could not fetch the MTA-STS policy: check the policy host",
    ResultType.STS_POLICY_INVALID: "the sender found the MTA-STS policy invalid: run 'mtasts lint policy'",
    ResultType.STS_WEBPKI_INVALID: "the policy host's HTTPS certificate failed validation: fix mta-sts.<domain>",
}


def success_rate(successful: int, failed: int) -> float | None:
    """Successful sessions over all sessions, ``None`` when there were none."""
    total = successful + failed
    return None if total == 0 else successful / total


@dataclass(frozen=True, slots=True)
class Totals:
    successful: int = 0
    failed: int = 0

    @property
    def rate(self) -> float | None:
        return success_rate(self.successful, self.failed)

    def add(self, successful: int, failed: int) -> Totals:
        return Totals(self.successful + successful, self.failed + failed)


@dataclass(frozen=True, slots=True)
class DayPoint:
    day: date
    successful: int
    failed: int

    @property
    def rate(self) -> float | None:
        return success_rate(self.successful, self.failed)


_new_day_point = trusted_constructor(DayPoint)


@dataclass(frozen=True, slots=True)
class DomainSummary:
    """Everything about one policy domain (``None``: reports that name no domain)."""

    policy_domain: str | None
    totals: Totals
    daily: tuple[DayPoint, ...]
    by_policy_type: Mapping[str, Totals]
    by_organization: Mapping[str, Totals]
    by_result_type: Mapping[str, int]
    by_receiving_mx: Mapping[str, int]
    by_sending_ip: Mapping[str, int]
    double_counted: Totals = Totals()  # left out of the totals: see count_once

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``mtasts report summary --json``; keys are a public contract."""
        return {
            "policy_domain": self.policy_domain,
            "total_successful": self.totals.successful,
            "total_failure": self.totals.failed,
            "success_rate": self.totals.rate,
            "double_counted": {
                "total_successful": self.double_counted.successful,
                "total_failure": self.double_counted.failed,
            },
            "by_result_type": dict(self.by_result_type),
            "by_organization": {
                org: {"total_successful": t.successful, "total_failure": t.failed}
                for org, t in self.by_organization.items()
            },
            "by_policy_type": {
                kind: {"total_successful": t.successful, "total_failure": t.failed}
                for kind, t in self.by_policy_type.items()
            },
            "by_receiving_mx": dict(self.by_receiving_mx),
            "by_sending_ip": dict(self.by_sending_ip),
            "daily": [
                {
                    "day": p.day.isoformat(),
                    "total_successful": p.successful,
                    "total_failure": p.failed,
                    "success_rate": p.rate,
                }
                for p in self.daily
            ],
        }


def _sorted_counts(counter: Mapping[str, int]) -> dict[str, int]:
    """Largest count first, ties by name (a stable sort by count after one by name)."""
    if len(counter) < 2:  # most of a sender's breakdowns: nothing to sort
        return dict(counter)
    items = sorted(counter.items())
    items.sort(key=itemgetter(1), reverse=True)
    return dict(items)


def rollup_rows(policies: Iterable[PolicyRow], failures: Iterable[FailureRow]) -> Rollup:
    """Sum flat rows per the keys of :class:`Rollup` (``first_seen``: the position of the first
    failure row holding the value)."""
    days: dict[tuple[str | None, date, str], list[int]] = {}
    senders: dict[tuple[str | None, str], list[Any]] = {}
    for row in policies:
        day_key = (row.policy_domain, row.day, row.policy_type)
        totals = days.get(day_key)
        if totals is None:
            days[day_key] = [row.total_successful, row.total_failure]
        else:
            totals[0] += row.total_successful
            totals[1] += row.total_failure
        sender_key = (row.policy_domain, row.organization_name)
        sender = senders.get(sender_key)
        if sender is None:
            sender = senders[sender_key] = [0, 0, None, None]
        sender[0] += row.total_successful
        sender[1] += row.total_failure
        if row.total_failure:
            sender[2] = row.day if sender[2] is None else min(sender[2], row.day)
            sender[3] = row.day if sender[3] is None else max(sender[3], row.day)
    found: dict[tuple[str | None, str, str, str | None], list[Any]] = {}
    for position, failure in enumerate(failures):
        domain, org, count, day = (
            failure.policy_domain,
            failure.organization_name,
            failure.failed_session_count,
            failure.day,
        )
        for kind, value in (
            ("result_type", failure.result_type),
            ("sending_ip", failure.sending_mta_ip or None),
            ("mx", failure.receiving_mx_hostname or failure.receiving_ip or None),
            ("reason", failure.failure_reason_code or None),
        ):
            if kind == "reason" and value is None:
                continue
            key = (domain, org, kind, value)
            total = found.get(key)
            if total is None:
                found[key] = [count, day, day, position]
            else:
                total[0] += count
                total[1] = min(total[1], day)
                total[2] = max(total[2], day)
    day_totals: tuple[DayTotal, ...] = tuple((*key, *totals) for key, totals in days.items())  # type: ignore[misc]
    sender_totals: tuple[SenderTotal, ...] = tuple((*key, *sender) for key, sender in senders.items())
    failure_totals: tuple[FailureTotal, ...] = tuple((*key, *total) for key, total in found.items())
    return Rollup(day_totals, sender_totals, failure_totals)


def summarise(policies: Iterable[PolicyRow], failures: Iterable[FailureRow]) -> list[DomainSummary]:
    """One :class:`DomainSummary` per policy domain, sorted by domain (no-domain last)."""
    return summarise_rollup(rollup_rows(policies, failures))


def _domain_order(key: str | None) -> tuple[bool, str]:
    return (key is None, key or "")


def _senders_once(rollup: Rollup) -> tuple[SenderTotal, ...]:
    """The ``senders`` of :func:`count_once` (all that :func:`failing_senders_rollup` needs)."""
    if not rollup.senders_twice:
        return rollup.senders
    per_sender = {(key, org): (ok, bad) for key, org, ok, bad in rollup.senders_twice}
    senders: list[SenderTotal] = []
    for row in rollup.senders:
        key, org, successful, failed, first, last = row
        minus = per_sender.get((key, org))
        if minus is None:
            senders.append(row)
        else:
            ok, bad = successful - minus[0], failed - minus[1]
            senders.append((key, org, ok if ok > 0 else 0, bad if bad > 0 else 0, first, last))
    return tuple(senders)


def count_once(rollup: Rollup) -> Rollup:
    """``rollup`` with the sessions it counted twice (``days_twice``, ``senders_twice``: those a
    report listed under both ``tlsa`` and ``sts`` for one policy domain) taken out of the ``sts``
    rows of ``days`` and out of ``senders``; so they count once, by the ``tlsa`` result (a sender
    that validates DANE applies DANE, not MTA-STS: RFC 8461 §2). ``days`` keeps its rows in
    their order; ``failures`` stay as reported; the result has nothing left counted twice."""
    if not rollup.days_twice and not rollup.senders_twice:
        return rollup
    per_day = {(key, day): (ok, bad) for key, day, ok, bad in rollup.days_twice}
    days: list[DayTotal] = []
    for row in rollup.days:
        key, day, kind, successful, failed = row
        minus = per_day.get((key, day)) if kind == "sts" else None
        if minus is None:
            days.append(row)
        else:
            ok, bad = successful - minus[0], failed - minus[1]
            days.append((key, day, kind, ok if ok > 0 else 0, bad if bad > 0 else 0))
    return Rollup(tuple(days), _senders_once(rollup), rollup.failures)


def summarise_rollup(rollup: Rollup) -> list[DomainSummary]:
    """:func:`summarise` over a roll-up, its sessions counted once (:func:`count_once`; the
    totals by policy type as reported).

    Written for tens of thousands of rows (the dashboard computes it on a cold view): one pass
    per table, the rule of :func:`count_once` applied inline to the ``sts`` rows, and each
    domain's tables looked up once per run of its rows (a store returns a domain's rows
    together; any order still gives the same result)."""
    twice = {(key, day): (ok, bad) for key, day, ok, bad in rollup.days_twice}
    days: dict[str | None, dict[date, list[int]]] = {}
    kinds: dict[str | None, dict[str, list[int]]] = {}
    last_key: Any = _NOTHING
    per_day: dict[date, list[int]] = {}
    per_kind: dict[str, list[int]] = {}
    for key, day, kind, reported_ok, reported_failed in rollup.days:
        successful, failed = reported_ok, reported_failed
        if key != last_key:
            last_key = key
            known = days.get(key)
            if known is None:
                per_day = days[key] = {}
                per_kind = kinds[key] = {}
            else:
                per_day, per_kind = known, kinds[key]
        pair = per_kind.get(kind)
        if pair is None:
            per_kind[kind] = [reported_ok, reported_failed]
        else:
            pair[0] += reported_ok
            pair[1] += reported_failed
        if twice and kind == "sts":
            minus = twice.get((key, day))
            if minus is not None:  # count_once: the tlsa result counts these sessions
                successful = successful - minus[0] if successful > minus[0] else 0
                failed = failed - minus[1] if failed > minus[1] else 0
        pair = per_day.get(day)
        if pair is None:
            per_day[day] = [successful, failed]
        else:
            pair[0] += successful
            pair[1] += failed
    orgs: dict[str | None, dict[str, list[int]]] = defaultdict(dict)
    for key, org, successful, failed, _, _ in _senders_once(rollup):
        per_org = orgs[key]
        pair = per_org.get(org)
        if pair is None:
            per_org[org] = [successful, failed]
        else:
            pair[0] += successful
            pair[1] += failed
    double: dict[str | None, list[int]] = {}
    for key, _, successful, failed in rollup.days_twice:
        pair = double.setdefault(key, [0, 0])
        pair[0] += successful
        pair[1] += failed
    counters: dict[tuple[str, str | None], dict[str, int]] = {}
    last: Any = _NOTHING
    counter: dict[str, int] = {}
    for key, _, kind, value, failed, _, _, _ in rollup.failures:
        if kind == "reason":
            continue
        if (kind, key) != last:
            last = (kind, key)
            counter = counters.setdefault(last, {})
        name = (value or "") if kind == "result_type" else value or "(unknown)"
        counter[name] = counter.get(name, 0) + failed
    empty: dict[str, int] = {}
    summaries = []
    for key in sorted(days, key=_domain_order):
        daily = sorted(days[key].items())
        summaries.append(
            DomainSummary(
                policy_domain=key,
                totals=Totals(sum([pair[0] for _, pair in daily]), sum([pair[1] for _, pair in daily])),
                daily=tuple([_new_day_point(day, ok, failed) for day, (ok, failed) in daily]),
                by_policy_type={kind: Totals(*pair) for kind, pair in sorted(kinds[key].items())},
                by_organization={
                    org: Totals(ok, bad)
                    for org, (ok, bad) in sorted(orgs[key].items(), key=lambda item: (-item[1][1], item[0]))
                },
                by_result_type=_sorted_counts(counters.get(("result_type", key), empty)),
                by_receiving_mx=_sorted_counts(counters.get(("mx", key), empty)),
                by_sending_ip=_sorted_counts(counters.get(("sending_ip", key), empty)),
                double_counted=Totals(*double.get(key, (0, 0))),
            )
        )
    return summaries


_NOTHING: Final = object()  # a key no row has: the first row always starts a run


@dataclass(frozen=True, slots=True)
class Overview:
    """What :func:`summarise_rollup` says about every domain at once, without each domain's
    breakdowns: what a dashboard of all domains shows (sessions counted once, as there)."""

    domains: Mapping[str | None, Totals]  # each domain's sessions, in the order of the summaries
    daily: tuple[DayPoint, ...]  # all domains' sessions per day
    by_policy_type: Mapping[str, Totals]  # as reported
    by_organization: Mapping[str, Totals]  # most failed first
    by_result_type: Mapping[str, int]  # failed sessions, most first (as each summary counts them)
    by_receiving_mx: Mapping[str, int]
    by_sending_ip: Mapping[str, int]
    double_counted: Totals  # left out of the totals: see count_once


def _senders_and_failures(rollup: Rollup) -> tuple[dict[str, list[int]], dict[str, dict[str, int]]]:
    """Each sending organisation's sessions (successful, failed; counted once) and the failed
    sessions by result type, receiving MX and sending IP: what both overviews add up alike."""
    orgs: dict[str, list[int]] = {}
    for _, org, successful, failed, _, _ in _senders_once(rollup):
        pair = orgs.get(org)
        if pair is None:
            orgs[org] = [successful, failed]
        else:
            pair[0] += successful
            pair[1] += failed
    counters: dict[str, dict[str, int]] = {"result_type": {}, "mx": {}, "sending_ip": {}}
    for _, _, kind, value, failed, _, _, _ in rollup.failures:
        counter = counters.get(kind)
        if counter is not None:
            name = (value or "") if kind == "result_type" else value or "(unknown)"
            counter[name] = counter.get(name, 0) + failed
    return orgs, counters


def overview_rollup(rollup: Rollup) -> Overview:
    """The :class:`Overview` of a roll-up: one pass over each of its tables (a dashboard over
    a million session rows computes it cold in milliseconds, where summarising each domain
    first and adding the summaries up took several times longer)."""
    twice = {(key, day): (ok, bad) for key, day, ok, bad in rollup.days_twice}
    domains: dict[str | None, list[int]] = {}
    daily: dict[date, list[int]] = {}
    kinds: dict[str, list[int]] = {}
    last_key: Any = _NOTHING
    totals = [0, 0]
    for key, day, kind, reported_ok, reported_failed in rollup.days:
        successful, failed = reported_ok, reported_failed
        if key != last_key:
            last_key = key
            totals = domains.setdefault(key, [0, 0])
        pair = kinds.get(kind)
        if pair is None:
            kinds[kind] = [reported_ok, reported_failed]
        else:
            pair[0] += reported_ok
            pair[1] += reported_failed
        if twice and kind == "sts":
            minus = twice.get((key, day))
            if minus is not None:  # count_once, as in summarise_rollup
                successful = successful - minus[0] if successful > minus[0] else 0
                failed = failed - minus[1] if failed > minus[1] else 0
        totals[0] += successful
        totals[1] += failed
        pair = daily.get(day)
        if pair is None:
            daily[day] = [successful, failed]
        else:
            pair[0] += successful
            pair[1] += failed
    orgs, counters = _senders_and_failures(rollup)
    double = [0, 0]
    for _, _, successful, failed in rollup.days_twice:
        double[0] += successful
        double[1] += failed
    return Overview(
        domains={key: Totals(*domains[key]) for key in sorted(domains, key=_domain_order)},
        daily=tuple([_new_day_point(day, ok, bad) for day, (ok, bad) in sorted(daily.items())]),
        by_policy_type={kind: Totals(*pair) for kind, pair in sorted(kinds.items())},
        by_organization={
            org: Totals(ok, bad) for org, (ok, bad) in sorted(orgs.items(), key=lambda item: (-item[1][1], item[0]))
        },
        by_result_type=_sorted_counts(counters["result_type"]),
        by_receiving_mx=_sorted_counts(counters["mx"]),
        by_sending_ip=_sorted_counts(counters["sending_ip"]),
        double_counted=Totals(*double),
    )


def overview_sums(sums: DaySums, rollup: Rollup) -> Overview:
    """The :class:`Overview` of a roll-up whose day totals the store summed (``sums``, of
    ``ReportStoreProtocol.day_sums``; ``rollup`` without its ``days``): equal to
    :func:`overview_rollup` of the whole roll-up, without a pass over one row per domain,
    day and policy type (the ones left here are the senders' and the failure values')."""
    orgs, counters = _senders_and_failures(rollup)
    domains = {row.policy_domain: row for row in sums.domains}
    return Overview(
        domains={
            key: Totals(domains[key].successful, domains[key].failed) for key in sorted(domains, key=_domain_order)
        },
        daily=tuple([_new_day_point(day, ok, bad) for day, ok, bad in sorted(sums.daily)]),
        by_policy_type={kind: Totals(ok, bad) for kind, ok, bad in sorted(sums.policy_types)},
        by_organization={
            org: Totals(ok, bad) for org, (ok, bad) in sorted(orgs.items(), key=lambda item: (-item[1][1], item[0]))
        },
        by_result_type=_sorted_counts(counters["result_type"]),
        by_receiving_mx=_sorted_counts(counters["mx"]),
        by_sending_ip=_sorted_counts(counters["sending_ip"]),
        double_counted=Totals(*sums.double_counted),
    )


@dataclass(frozen=True, slots=True)
class SenderIssue:
    """A sending organisation that fails to deliver to a domain over TLS: who, how, since when."""

    policy_domain: str | None
    organization_name: str
    failed_sessions: int
    successful_sessions: int
    first_failure: date
    last_failure: date
    result_types: Mapping[str, int]
    sending_ips: Mapping[str, int] = field(default_factory=dict)
    receiving_mxs: Mapping[str, int] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()

    @property
    def advice(self) -> str:
        top = next(iter(self.result_types), "")
        return RESULT_TYPE_HELP.get(top, f"unregistered result type {top!r}: ask the sender what it means")

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy_domain": self.policy_domain,
            "organization_name": self.organization_name,
            "failed_sessions": self.failed_sessions,
            "successful_sessions": self.successful_sessions,
            "first_failure": self.first_failure.isoformat(),
            "last_failure": self.last_failure.isoformat(),
            "result_types": dict(self.result_types),
            "sending_ips": dict(self.sending_ips),
            "receiving_mxs": dict(self.receiving_mxs),
            "reasons": list(self.reasons),
            "advice": self.advice,
        }


_new_sender_issue = trusted_constructor(SenderIssue)


def failing_senders(policies: Iterable[PolicyRow], failures: Iterable[FailureRow]) -> list[SenderIssue]:
    """The senders to work with, most failed sessions first.

    Failed sessions come from the policy summaries (what the sender counted); how they failed
    comes from the failure details, which may be absent or not add up (see the parser).
    """
    return failing_senders_rollup(rollup_rows(policies, failures))


def failing_senders_rollup(rollup: Rollup) -> list[SenderIssue]:
    """:func:`failing_senders` over a roll-up, its sessions counted once (:func:`count_once`).

    One pass over the senders and one over the failure values (a sender's values come
    together from a store; any order gives the same result)."""
    counts: dict[tuple[str | None, str], list[int]] = {}
    first: dict[tuple[str | None, str], date] = {}
    last: dict[tuple[str | None, str], date] = {}
    for domain, org, successful, failed, first_failed, last_failed in _senders_once(rollup):
        key = (domain, org)
        pair = counts.get(key)
        if pair is None:
            counts[key] = [successful, failed]
        else:
            pair[0] += successful
            pair[1] += failed
        if first_failed is not None and last_failed is not None:
            known = first.get(key)
            if known is None or first_failed < known:
                first[key] = first_failed
            known = last.get(key)
            if known is None or last_failed > known:
                last[key] = last_failed
    kinds: dict[str, dict[tuple[str | None, str], dict[str, int]]] = {"result_type": {}, "sending_ip": {}, "mx": {}}
    reasons: dict[tuple[str | None, str], list[tuple[int, str]]] = defaultdict(list)
    run: Any = _NOTHING
    key = (None, "")
    for domain, org, kind, value, failed, first_day, last_day, first_seen in rollup.failures:
        if (domain, org) != run:
            run = key = (domain, org)
        name = value or ""
        if kind == "result_type":
            known = first.get(key)
            if known is None or first_day < known:
                first[key] = first_day
            known = last.get(key)
            if known is None or last_day > known:
                last[key] = last_day
        elif not name:
            continue
        elif kind == "reason":
            reasons[key].append((first_seen, name))
            continue
        by_kind = kinds.get(kind)
        if by_kind is not None:
            counter = by_kind.get(key)
            if counter is None:
                counter = by_kind[key] = {}
            counter[name] = counter.get(name, 0) + failed
    types, ips, mxs = kinds["result_type"], kinds["sending_ip"], kinds["mx"]
    empty: dict[str, int] = {}
    none = (0, 0)
    issues = []
    for key, first_failure in first.items():
        successful, failed = counts.get(key, none)
        found = types.get(key, empty)
        issues.append(
            _new_sender_issue(
                key[0],
                key[1],
                failed or sum(found.values()),
                successful,
                first_failure,
                last[key],
                _sorted_counts(found),
                _sorted_counts(ips.get(key, empty)),
                _sorted_counts(mxs.get(key, empty)),
                tuple(dict.fromkeys(reason for _, reason in sorted(reasons[key]))) if key in reasons else (),
            )
        )
    issues.sort(key=lambda i: (-i.failed_sessions, i.policy_domain or "", i.organization_name))
    return issues


class ReadinessVerdict(StrEnum):
    """Can the domain switch its MTA-STS policy to ``mode: enforce``?"""

    READY = "ready"
    ALMOST = "almost"
    NOT_READY = "not-ready"
    TOO_FEW_SESSIONS = "too-few-sessions"
    NO_POLICY_SEEN = "no-policy-seen"
    NO_DATA = "no-data"


# (lowest success rate, verdict, explanation): the first row the domain reaches applies.
READINESS_RULES: Final[Sequence[tuple[float, ReadinessVerdict, str]]] = (
    (0.999, ReadinessVerdict.READY, "at least 99.9% of sessions validated: enforce is safe"),
    (0.99, ReadinessVerdict.ALMOST, "99% to 99.9% validated: fix the failing senders' causes first"),
    (0.0, ReadinessVerdict.NOT_READY, "more than 1% of sessions failed: enforcing would bounce mail"),
)


@dataclass(frozen=True, slots=True)
class Readiness:
    policy_domain: str | None
    verdict: ReadinessVerdict
    explanation: str
    since: date
    until: date
    totals: Totals

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy_domain": self.policy_domain,
            "verdict": self.verdict.value,
            "explanation": self.explanation,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "total_successful": self.totals.successful,
            "total_failure": self.totals.failed,
            "success_rate": self.totals.rate,
        }


def readiness(
    policies: Iterable[PolicyRow], *, until: date | None = None, days: int = 30, min_sessions: int = 10
) -> list[Readiness]:
    """The enforce verdict per domain from its ``sts`` sessions in the ``days`` days up to
    ``until`` (by default each domain's newest report day, so old data still gets an answer)."""
    return readiness_rollup(rollup_rows(policies, ()), until=until, days=days, min_sessions=min_sessions)


def readiness_rollup(
    rollup: Rollup, *, until: date | None = None, days: int = 30, min_sessions: int = 10
) -> list[Readiness]:
    """:func:`readiness` over a roll-up."""
    newest: dict[str | None, date] = {}
    sts_rows: list[DayTotal] = []  # the second pass reads these only
    for row in rollup.days:
        key, day, kind = row[0], row[1], row[2]
        known = newest.get(key)
        if known is None or day > known:
            newest[key] = day
        if kind == "sts":
            sts_rows.append(row)
    has_sts = {row[0] for row in sts_rows}
    windows = {
        domain: (end - timedelta(days=days - 1), end) for domain, last in newest.items() for end in [until or last]
    }
    sums: dict[str | None, list[int]] = {}
    for key, day, _, successful, failed in sts_rows:
        first, end = windows[key]
        if first <= day <= end:
            pair = sums.get(key)
            if pair is None:
                sums[key] = [successful, failed]
            else:
                pair[0] += successful
                pair[1] += failed
    sts = {key: Totals(*pair) for key, pair in sums.items()}
    return [
        _readiness(domain, sts.get(domain, Totals()), domain in has_sts, windows[domain][1], days, min_sessions)
        for domain in sorted(newest, key=_domain_order)
    ]


def readiness_sums(sums: DaySums, *, min_sessions: int = 10) -> list[Readiness]:
    """:func:`readiness` of the day totals a store summed (``sums``, of ``day_sums``): equal to
    :func:`readiness_rollup` of the roll-up with ``until=sums.until, days=sums.window``."""
    days = sums.window
    return [
        _readiness(
            row.policy_domain,
            Totals(row.sts_successful, row.sts_failed),
            row.has_sts,
            sums.until or row.newest,
            days,
            min_sessions,
        )
        for row in sorted(sums.domains, key=lambda row: _domain_order(row.policy_domain))
    ]


def _readiness(domain: str | None, totals: Totals, has_sts: bool, end: date, days: int, min_sessions: int) -> Readiness:
    """The verdict of one domain's ``sts`` sessions (``totals``) in the ``days`` days to ``end``."""
    rate = totals.rate
    if rate is None:
        verdict, why = (
            (ReadinessVerdict.NO_DATA, f"no sts sessions reported in the {days} days to {end}")
            if has_sts
            else (
                ReadinessVerdict.NO_POLICY_SEEN,
                f"no sender reported an MTA-STS policy in the {days} days to {end}",
            )
        )
    elif totals.successful + totals.failed < min_sessions and rate >= READINESS_RULES[0][0]:
        verdict, why = (
            ReadinessVerdict.TOO_FEW_SESSIONS,
            f"only {_sessions(totals.successful + totals.failed)} reported: wait for more reports",
        )
    else:
        verdict, why = next((v, w) for floor, v, w in READINESS_RULES if rate >= floor)
    return Readiness(domain, verdict, why, end - timedelta(days=days - 1), end, totals)


_BARS: Final = "▁▂▃▄▅▆▇█"


def sparkline(points: Sequence[DayPoint], *, until: date | None = None, width: int = 30) -> str:
    """The daily success rate as bars, one per day ending at ``until`` (space: no report that day)."""
    if not points:
        return ""
    end = until or points[-1].day
    by_day = {p.day: p.rate for p in points}
    out = []
    for offset in range(width - 1, -1, -1):
        rate = by_day.get(end - timedelta(days=offset))
        out.append(" " if rate is None else _BARS[min(len(_BARS) - 1, int(rate * (len(_BARS) - 1) + 0.5))])
    return "".join(out)


# --- digest: what changed, for a daily cron job -----------------------------------------------

DAILY_SHARE: Final = (5, 7)
"""A reporter "used to send daily" when it reported on at least 5 of every 7 days (rounded up:
5 of 7, 10 of 14, 3 of 3) of the ``baseline_days`` days that end on its last report: a few
skipped days (a quiet weekend, a late report) still count as daily, a weekly reporter does not."""


def daily_threshold(days: int) -> int:
    """How many of ``days`` days a daily reporter reported on (:data:`DAILY_SHARE`, rounded up)."""
    share, out_of = DAILY_SHARE
    return max(1, -(-days * share // out_of))


class AlertKind(StrEnum):
    FAILURE_SPIKE = "failure-spike"
    NEW_FAILING_SENDER = "new-failing-sender"
    NO_REPORTS = "no-reports"
    SILENT_REPORTER = "silent-reporter"


@dataclass(frozen=True, slots=True)
class Alert:
    kind: AlertKind
    policy_domain: str | None
    message: str
    organization_name: str | None = None
    last_report: date | None = None  # the silence alerts: the newest day reported
    days_silent: int | None = None  # the silence alerts: days from that day to the end of the period

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "policy_domain": self.policy_domain,
            "organization_name": self.organization_name,
            "message": self.message,
            "last_report": None if self.last_report is None else self.last_report.isoformat(),
            "days_silent": self.days_silent,
        }


@dataclass(frozen=True, slots=True)
class DomainDigest:
    policy_domain: str | None
    recent: Totals
    baseline: Totals

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy_domain": self.policy_domain,
            "total_successful": self.recent.successful,
            "total_failure": self.recent.failed,
            "success_rate": self.recent.rate,
            "baseline_success_rate": self.baseline.rate,
        }


@dataclass(frozen=True, slots=True)
class LastReport:
    """The newest day a policy domain got a report for, up to the end of the period."""

    policy_domain: str | None
    day: date
    days_silent: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy_domain": self.policy_domain,
            "last_report": self.day.isoformat(),
            "days_silent": self.days_silent,
        }


@dataclass(frozen=True, slots=True)
class Digest:
    """The last ``days`` days against the ``baseline_days`` before them."""

    since: date
    until: date
    baseline_since: date
    domains: tuple[DomainDigest, ...]
    alerts: tuple[Alert, ...]
    senders: tuple[SenderIssue, ...]
    silent_days: int = 0
    last_reports: tuple[LastReport, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "baseline_since": self.baseline_since.isoformat(),
            "silent_days": self.silent_days,
            "domains": [d.to_dict() for d in self.domains],
            "alerts": [a.to_dict() for a in self.alerts],
            "failing_senders": [s.to_dict() for s in self.senders],
            "last_reports": [r.to_dict() for r in self.last_reports],
        }

    def to_text(self) -> str:
        """Plain text for a terminal, a cron mail or a log; each line :func:`printable`, so a
        sender's name or result type cannot break a line or send the terminal an ESC sequence."""
        lines = [f"TLSRPT digest {self.since} to {self.until} (baseline from {self.baseline_since})", ""]
        if self.alerts:
            lines.append(f"ALERTS ({len(self.alerts)}):")
            lines.extend(f"  ! {alert.message}" for alert in self.alerts)
            lines.append("")
        for domain in self.domains:
            rate, before = _pct(domain.recent.rate), _pct(domain.baseline.rate)
            lines.append(
                f"{domain.policy_domain or NO_DOMAIN}: {domain.recent.successful} ok, {domain.recent.failed} failed, "
                f"{rate} success (before: {before})"
            )
        if not self.domains:
            lines.append("No reports in this period." if self.last_reports else "No reports stored yet.")
        if self.senders:
            lines.extend(["", "Failing senders:"])
            for issue in self.senders:
                kinds = ", ".join(f"{k} ×{n}" for k, n in issue.result_types.items()) or "no details"
                lines.append(
                    f"  {issue.organization_name} → {issue.policy_domain or NO_DOMAIN}: "
                    f"{issue.failed_sessions} failed ({kinds}) since {issue.first_failure}; {issue.advice}"
                )
        return "\n".join(map(printable, lines)) + "\n"


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.1%}"


def _sessions(count: int) -> str:
    """``1 sts session``, ``2 sts sessions`` (English: translated as a whole sentence's part)."""
    return plural(count, "sts session")


def _days(count: int) -> str:
    """``1 day``, ``2 days`` (English, as :func:`_sessions`)."""
    return plural(count, "day")


def digest(
    policies: Iterable[PolicyRow],
    failures: Iterable[FailureRow],
    *,
    until: date,
    days: int = 1,
    baseline_days: int = 7,
    spike_factor: float = 2.0,
    min_failures: int = 5,
    silent_days: int = 3,
    days_twice: Iterable[DayTwice] = (),
    senders_twice: Iterable[SenderTwice] = (),
) -> Digest:
    """Compare the last ``days`` days (to ``until``, today for a cron job) with the
    ``baseline_days`` before them, and notice reports that stopped coming.

    A failure spike: the failure rate at least ``spike_factor`` times the baseline's (or any
    failure rate where the baseline had none) with at least ``min_failures`` failed sessions.
    A newly failing sender: failures now, none in the baseline.

    Silence is measured in report days (a report's day is the day it covers, and it arrives the
    day after), up to ``until``; reports of later days are ignored. A policy domain whose newest
    report is ``silent_days`` or more days before ``until`` gets *no reports* (for as long as the
    silence lasts). Otherwise, a reporter (an organisation, per policy domain) gets *silent
    reporter* when it used to send daily (:data:`DAILY_SHARE` of the ``baseline_days`` days that
    end on its last report) and that last report is ``silent_days`` or more days before
    ``until``; once it has been silent for ``silent_days + baseline_days`` days it is taken as
    gone (it no longer sends you mail) and no longer flagged.

    Sessions are counted once, as in the summary (:func:`count_once`), from the facts a store
    kept at ingest (flat rows cannot say which report a row came from): ``days_twice``, per
    day, from the baseline's first day on (``store.rollup(since=...).days_twice``), and
    ``senders_twice`` of the period's reports (``since`` to ``until``). Without them sessions
    count as reported.
    """
    since = until - timedelta(days=days - 1)
    baseline_since = since - timedelta(days=baseline_days)
    stored = [r for r in policies if r.day <= until]
    recent_rows = [r for r in stored if baseline_since <= r.day]
    recent_failures = [f for f in failures if baseline_since <= f.day <= until]
    now_p = [r for r in recent_rows if r.day >= since]
    now_f = [f for f in recent_failures if f.day >= since]
    before_p = [r for r in recent_rows if r.day < since]
    before_f = [f for f in recent_failures if f.day < since]
    twice = [t for t in days_twice if baseline_since <= t[1] <= until]
    now_rollup = replace(
        rollup_rows(now_p, now_f),
        days_twice=tuple([t for t in twice if t[1] >= since]),
        senders_twice=tuple(senders_twice),
    )
    before_rollup = replace(rollup_rows(before_p, before_f), days_twice=tuple([t for t in twice if t[1] < since]))
    recent = {s.policy_domain: s.totals for s in summarise_rollup(now_rollup)}
    baseline = {s.policy_domain: s.totals for s in summarise_rollup(before_rollup)}
    domains = tuple(
        DomainDigest(key, recent[key], baseline.get(key, Totals())) for key in sorted(recent, key=_domain_order)
    )
    last_reports, silence = _silence(stored, until=until, silent_days=silent_days, baseline_days=baseline_days)
    alerts: list[Alert] = list(silence)
    for item in domains:
        now_rate = 1 - (item.recent.rate if item.recent.rate is not None else 1)
        before_rate = 1 - (item.baseline.rate if item.baseline.rate is not None else 1)
        if item.recent.failed >= min_failures and now_rate > 0 and now_rate >= spike_factor * before_rate:
            alerts.append(
                Alert(
                    AlertKind.FAILURE_SPIKE,
                    item.policy_domain,
                    f"{item.policy_domain or NO_DOMAIN}: {item.recent.failed} failed sessions, "
                    f"{now_rate:.1%} of all (before: {before_rate:.1%})",
                )
            )
    # who failed before is a yes or no, which counting once does not change (a tlsa copy stays)
    before_senders = {(i.policy_domain, i.organization_name) for i in failing_senders_rollup(before_rollup)}
    senders = failing_senders_rollup(now_rollup)
    for issue in senders:
        if (issue.policy_domain, issue.organization_name) not in before_senders:
            kinds = ", ".join(issue.result_types) or "no details"
            alerts.append(
                Alert(
                    AlertKind.NEW_FAILING_SENDER,
                    issue.policy_domain,
                    f"{issue.organization_name} newly fails to deliver to {issue.policy_domain or NO_DOMAIN} over TLS: "
                    f"{issue.failed_sessions} sessions ({kinds})",
                    issue.organization_name,
                )
            )
    return Digest(
        since, until, baseline_since, domains, tuple(alerts), tuple(senders), silent_days, tuple(last_reports)
    )


def _silence(
    rows: Sequence[PolicyRow], *, until: date, silent_days: int, baseline_days: int
) -> tuple[list[LastReport], list[Alert]]:
    """The newest report day per policy domain, and the silence alerts of :func:`digest`
    (no reports first, then silent reporters; each by domain, then organisation)."""
    reported: dict[tuple[str | None, str], set[date]] = defaultdict(set)
    for row in rows:
        reported[(row.policy_domain, row.organization_name)].add(row.day)
    newest: dict[str | None, date] = {}
    for (domain, _), report_days in reported.items():
        newest[domain] = max(newest.get(domain, date.min), *report_days)
    last_reports = [
        LastReport(domain, newest[domain], (until - newest[domain]).days)
        for domain in sorted(newest, key=_domain_order)
    ]
    alerts = [
        Alert(
            AlertKind.NO_REPORTS,
            last.policy_domain,
            f"{last.policy_domain or NO_DOMAIN}: no report at all for {_days(last.days_silent)} "
            f"(the newest covers {last.day})",
            last_report=last.day,
            days_silent=last.days_silent,
        )
        for last in last_reports
        if last.days_silent >= silent_days
    ]
    quiet_domains = {alert.policy_domain for alert in alerts}
    needed = daily_threshold(baseline_days)
    for (domain, org), report_days in sorted(
        reported.items(), key=lambda item: (_domain_order(item[0][0]), item[0][1])
    ):
        last = max(report_days)
        silent = (until - last).days
        if domain in quiet_domains or not silent_days <= silent < silent_days + baseline_days:
            continue
        window_start = last - timedelta(days=baseline_days - 1)
        active = sum(1 for day in report_days if window_start <= day)
        if active >= needed:
            alerts.append(
                Alert(
                    AlertKind.SILENT_REPORTER,
                    domain,
                    f"{org} stopped reporting for {domain or NO_DOMAIN}: no report for {_days(silent)}; "
                    f"it reported on {active} of the {baseline_days} days to {last}",
                    org,
                    last_report=last,
                    days_silent=silent,
                )
            )
    return last_reports, alerts
