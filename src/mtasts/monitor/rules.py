"""The monitor's decisions, pure: which conditions hold, and which events open and clear.

:func:`check_conditions` compares the previous conclusive check of a domain with the current
one (and the events still open, which carry what an earlier run saw); :func:`report_conditions`
reads the stored TLS reports through :func:`mtasts.report.analysis.digest`, the same rules as
``mtasts report digest`` (failure spike, newly failing sender, silent reporter, no reports);
:func:`transitions` turns the conditions into events opened, kept and cleared.

Rules for what is *not known*: an inconclusive run is never compared (the caller keeps every
open check event); a certificate not seen this run (the host did not answer) keeps its expiry
event open; a failed record lookup neither opens nor clears ``sts-record-gone``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

from mtasts.core.problems import Severity
from mtasts.core.tlsrpt_report import FailureRow, PolicyRow
from mtasts.monitor.events import EVENT_KINDS, Condition, OpenEvent
from mtasts.monitor.snapshot import CheckSnapshot, RecordState
from mtasts.report.analysis import AlertKind, digest

__all__ = [
    "DEFAULT_REPORT_RULES",
    "EXPIRY_THRESHOLDS",
    "IGNORED_FINDINGS",
    "ReportRules",
    "Transitions",
    "check_conditions",
    "report_conditions",
    "report_window",
    "transitions",
]

EXPIRY_THRESHOLDS: Final = (7, 14, 30)  # days, nearest first: only the nearest crossed is open
# covered by the cert-expiry-* events, which have their own thresholds
IGNORED_FINDINGS: Final = frozenset({"policy-cert-expiring-soon", "mx-cert-expiring-soon"})
# an expired certificate is the cert-expiry-7d event of its host ("expired ..."), not a second
# event of the same cause; the finding stays an event where no certificate was read for the host
_EXPIRED_FINDINGS: Final = {"policy-cert-expired": "policy", "mx-cert-expired": "mx"}
_EVENT_SEVERITIES: Final = frozenset({Severity.WARNING, Severity.ERROR})


def _fix(code: str) -> str:
    return EVENT_KINDS[code].fix


def check_conditions(
    previous: CheckSnapshot | None, current: CheckSnapshot, open_events: Iterable[OpenEvent], *, now: datetime
) -> list[Condition]:
    """The check conditions that hold at ``current`` (a conclusive run)."""
    domain = current.domain
    still_open = {event.key: event for event in open_events}
    found: list[Condition] = []
    expiring = _expiry_conditions(current, still_open, now)
    expired = {(c.role, c.host) for c in current.certificates if c.not_after <= now}
    for finding in current.findings:
        if finding.severity not in _EVENT_SEVERITIES or finding.code in IGNORED_FINDINGS:
            continue
        if (_EXPIRED_FINDINGS.get(finding.code), finding.host) in expired:
            continue
        found.append(Condition(domain, "finding", finding.subject, finding.severity, finding.message, finding.fix))
    found.extend(_policy_conditions(previous, current, still_open))
    found.extend(_mx_conditions(previous, current))
    found.extend(expiring)
    found.extend(_gone_conditions(previous, current, still_open))
    return _unique(found)


def _policy_conditions(
    previous: CheckSnapshot | None, current: CheckSnapshot, still_open: Mapping[tuple[str, str], OpenEvent]
) -> list[Condition]:
    domain, out = current.domain, []
    same_id = still_open.get(("policy-changed-same-id", ""))
    if same_id is not None:
        # open until the id changes or the original body is back; a run without a policy
        # says nothing about the body, so the event stays as it was
        original, under = same_id.data.get("original_sha256"), same_id.data.get("policy_id")
        if current.record_id == under and (current.policy_sha256 is None or current.policy_sha256 != original):
            out.append(same_id.condition())
    elif (
        previous is not None
        and previous.record_id is not None
        and previous.record_id == current.record_id
        and previous.policy_sha256 is not None
        and current.policy_sha256 is not None
        and previous.policy_sha256 != current.policy_sha256
    ):
        out.append(
            Condition(
                domain,
                "policy-changed-same-id",
                "",
                Severity.ERROR,
                f"the policy of {domain} changed (sha256 {previous.policy_sha256[:12]}… → "
                f"{current.policy_sha256[:12]}…) but the _mta-sts id is still {current.record_id}: senders that "
                "hold the old policy will not fetch the new one",
                _fix("policy-changed-same-id"),
                {"policy_id": current.record_id or "", "original_sha256": previous.policy_sha256},
            )
        )
    if (
        previous is not None
        and previous.record_id is not None
        and current.record_id is not None
        and previous.record_id != current.record_id
    ):
        out.append(
            Condition(
                domain,
                "policy-id-changed",
                "",
                Severity.INFO,
                f"the policy id of {domain} changed from {previous.record_id} to {current.record_id}",
                _fix("policy-id-changed"),
            )
        )
    return out


def _mx_conditions(previous: CheckSnapshot | None, current: CheckSnapshot) -> list[Condition]:
    if previous is None or previous.mx is None or current.mx is None or previous.mx == current.mx:
        return []
    domain = current.domain
    added = [h for h in current.mx if h not in previous.mx]
    removed = [h for h in previous.mx if h not in current.mx]
    change = "; ".join(
        part
        for part in (
            f"added {', '.join(added)}" if added else "",
            f"removed {', '.join(removed)}" if removed else "",
        )
        if part
    )
    if current.policy_sha256 is None:
        severity, match = Severity.INFO, "no policy was fetched to compare them with"
    elif not current.mx_unmatched:
        severity, match = Severity.INFO, "the policy still lists every MX"
    else:
        severity = Severity.ERROR if current.policy_mode == "enforce" else Severity.WARNING
        match = f"the policy does not list {', '.join(current.mx_unmatched)}"
    return [
        Condition(
            domain,
            "mx-changed",
            "",
            severity,
            f"the MX hosts of {domain} changed ({change}): {match}",
            _fix("mx-changed"),
        )
    ]


def _expiry_conditions(
    current: CheckSnapshot, still_open: Mapping[tuple[str, str], OpenEvent], now: datetime
) -> list[Condition]:
    domain, out = current.domain, []
    seen: set[str] = set()
    for certificate in current.certificates:
        subject = f"{certificate.role} {certificate.host}"
        seen.add(subject)
        days_left = (certificate.not_after - now).total_seconds() / 86400
        threshold = next((t for t in EXPIRY_THRESHOLDS if days_left <= t), None)
        if threshold is None:
            continue
        code = f"cert-expiry-{threshold}d"
        what = "the policy host" if certificate.role == "policy" else "the MX host"
        when = "expired" if days_left < 0 else f"expires in {days_left:.0f} days"
        out.append(
            Condition(
                domain,
                code,
                subject,
                EVENT_KINDS[code].severity or Severity.WARNING,
                f"the certificate of {what} {certificate.host} {when} ({certificate.not_after:%Y-%m-%d %H:%M} UTC)",
                _fix(code),
            )
        )
    for key, event in still_open.items():  # not seen this run: not known to be renewed
        if not key[0].startswith("cert-expiry-") or event.subject in seen:
            continue
        role, _, host = event.subject.partition(" ")
        if role == "policy" or current.mx is None or host in current.mx:  # (an MX removed: its event goes)
            out.append(event.condition())
    return out


def _gone_conditions(
    previous: CheckSnapshot | None, current: CheckSnapshot, still_open: Mapping[tuple[str, str], OpenEvent]
) -> list[Condition]:
    domain, out = current.domain, []
    record_gone = still_open.get(("sts-record-gone", ""))
    if current.record is RecordState.FAILED and record_gone is not None:
        out.append(record_gone.condition())
    elif current.record is RecordState.ABSENT and (
        record_gone is not None or (previous is not None and previous.record is RecordState.FOUND)
    ):
        was = f" (its id was {previous.record_id})" if previous is not None and previous.record_id else ""
        out.append(
            record_gone.condition()
            if record_gone is not None
            else Condition(
                domain,
                "sts-record-gone",
                "",
                Severity.ERROR,
                f"the _mta-sts TXT record of {domain} is gone{was}",
                _fix("sts-record-gone"),
            )
        )
    policy_gone = still_open.get(("policy-gone", ""))
    if current.policy_sha256 is None and (
        policy_gone is not None or (previous is not None and previous.policy_sha256 is not None)
    ):
        out.append(
            Condition(
                domain,
                "policy-gone",
                "",
                Severity.ERROR,
                f"the policy of {domain} cannot be fetched any more: {current.policy_failure}",
                _fix("policy-gone"),
            )
        )
    return out


# --- the stored TLS reports ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportRules:
    """The digest's parameters as the monitor uses them: the last ``days`` days against the
    ``baseline_days`` before; a reporter or domain silent for ``silent_days`` is flagged."""

    days: int = 2
    baseline_days: int = 7
    silent_days: int = 7


DEFAULT_REPORT_RULES: Final = ReportRules()


def report_window(today: date, rules: ReportRules) -> date:
    """The first report day :func:`report_conditions` needs (older rows change nothing)."""
    return today - timedelta(days=rules.days + rules.baseline_days + rules.silent_days)


_ALERT_CODES: Final[Mapping[AlertKind, str]] = {
    AlertKind.FAILURE_SPIKE: "failure-spike",
    AlertKind.NEW_FAILING_SENDER: "new-failing-sender",
    AlertKind.SILENT_REPORTER: "silent-reporter",
    AlertKind.NO_REPORTS: "no-reports",
}


def report_conditions(
    domain: str,
    policies: Sequence[PolicyRow],
    failures: Sequence[FailureRow],
    *,
    today: date,
    monitored_since: datetime,
    rules: ReportRules = DEFAULT_REPORT_RULES,
) -> list[Condition]:
    """The report conditions of ``domain`` from its rows since :func:`report_window` (for a
    domain that publishes a TLSRPT record: the caller decides)."""
    result = digest(
        policies,
        failures,
        until=today,
        days=rules.days,
        baseline_days=rules.baseline_days,
        silent_days=rules.silent_days,
    )
    found = [
        Condition(
            domain,
            code,
            alert.organization_name or "",
            EVENT_KINDS[code].severity or Severity.WARNING,
            alert.message,
            _fix(code),
        )
        for alert in result.alerts
        if alert.policy_domain == domain and (code := _ALERT_CODES[alert.kind])
    ]
    reported = any(row.day <= today for row in policies)
    if not reported and (today - monitored_since.date()).days >= rules.silent_days:
        window = (today - report_window(today, rules)).days
        found.append(
            Condition(
                domain,
                "no-reports",
                "",
                EVENT_KINDS["no-reports"].severity or Severity.WARNING,
                f"{domain}: no TLS report stored for the last {window} days, although the domain publishes a "
                "TLSRPT record",
                _fix("no-reports"),
            )
        )
    return _unique(found)


# --- from conditions to events ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transitions:
    """What one run does to a domain's events."""

    opened: tuple[Condition, ...]
    kept: tuple[tuple[OpenEvent, Condition], ...]  # still holding (the message may be newer)
    cleared: tuple[OpenEvent, ...]


def transitions(
    open_events: Iterable[OpenEvent], conditions: Iterable[Condition], *, evaluated: Collection[str]
) -> Transitions:
    """Open the conditions without an event, keep the events whose condition holds, clear the
    others; an open event whose code was not ``evaluated`` this run (an inconclusive check,
    reports not read) is kept as it is. A notice is open for one run: it clears at the next."""
    holding = {condition.key: condition for condition in conditions}
    opened: list[Condition] = []
    kept: list[tuple[OpenEvent, Condition]] = []
    cleared: list[OpenEvent] = []
    known: set[tuple[str, str]] = set()
    for event in open_events:
        condition = holding.get(event.key)
        if event.code not in evaluated:
            known.add(event.key)
            kept.append((event, event.condition()))
        elif event.kind.notice or condition is None:  # a notice is about one change: a new one is new
            cleared.append(event)
        else:
            known.add(event.key)
            kept.append((event, condition))
    for key, condition in holding.items():
        if key not in known:
            opened.append(condition)
    return Transitions(tuple(opened), tuple(kept), tuple(cleared))


def _unique(conditions: Iterable[Condition]) -> list[Condition]:
    """One condition per key (the first): two findings of one code on one host are one event."""
    seen: dict[tuple[str, str], Condition] = {}
    for condition in conditions:
        seen.setdefault(condition.key, condition)
    return list(seen.values())
