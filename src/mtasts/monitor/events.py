"""What the monitor tells people: event kinds as one table, conditions and open events as data.

An *event* is a condition that holds for a domain (a finding the inspector reports, a
certificate close to expiry, a reporter that went silent, ...). It is *opened* the first run the
condition holds, stays open, without another notification, while it keeps holding, and is
*cleared* the first run it no longer does; so each fires once and clears once. A few kinds are
*notices* (``notice=True``): changes worth knowing about (the policy id changed) rather than
problems; they fire once, and are cleared at the next run without a notification.

Every kind has a stable code (scripts and webhooks match on it), a severity (``None`` when it
depends on the case, said in ``severity_note``), a title (and one for its cleared transition when
the opened one would read wrong then: "a new finding" is resolved when cleared), an explanation
and a fix: :data:`EVENT_KINDS` is the one table, and docs/monitor.md is checked against it by a
test. The texts are English (webhooks, mails, logs, JSON); the web pages show them in the
reader's language through the sentence shapes of :mod:`mtasts.i18n.messages`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from mtasts.core.problems import Severity
from mtasts.core.untrusted import printable

__all__ = [
    "CHECK_CODES",
    "EVENT_KINDS",
    "REPORT_CODES",
    "Condition",
    "EventKind",
    "OpenEvent",
    "Source",
    "Transition",
    "TransitionKind",
    "events_table",
]


class Source(StrEnum):
    """What an event is computed from: the live check of the domain, or the stored TLS reports."""

    CHECK = "check"
    REPORTS = "reports"


@dataclass(frozen=True, slots=True)
class EventKind:
    """One row of :data:`EVENT_KINDS`."""

    code: str
    source: Source
    severity: Severity | None
    title: str
    explanation: str
    fix: str
    notice: bool = False
    severity_note: str = ""
    cleared_title: str = ""  # the title once cleared, when ``title`` says the opposite; else ``title``

    def titled(self, *, cleared: bool) -> str:
        """The title of an event of this kind, opened or cleared."""
        return self.cleared_title if cleared and self.cleared_title else self.title


_KINDS: tuple[EventKind, ...] = (
    EventKind(
        "finding",
        Source.CHECK,
        None,
        "a new finding",
        "The check reports a warning or an error it did not report at the previous run; the event is about one "
        "finding code on one host and address. Certificate expiry warnings are the cert-expiry-* events instead, "
        "and findings about this machine (its nameserver, port 25) make the run inconclusive rather than events.",
        "The finding's own fix (see docs/check.md).",
        severity_note="the finding's severity",
        cleared_title="the finding is resolved",
    ),
    EventKind(
        "policy-changed-same-id",
        Source.CHECK,
        Severity.ERROR,
        "the policy body changed but its id did not",
        "The policy host serves a different body while the _mta-sts record keeps the same id: senders that "
        "cached the old policy do not fetch the new one until it expires (RFC 8461 §3.1), so they apply the old "
        "mode and MX list for up to max_age.",
        "Publish a new id in the _mta-sts TXT record (e.g. the date and time) whenever the policy body changes.",
    ),
    EventKind(
        "policy-id-changed",
        Source.CHECK,
        Severity.INFO,
        "the policy id changed",
        "The id in the _mta-sts record differs from the previous run's: senders will fetch the policy again.",
        "Nothing, if you changed the policy; otherwise find out who changed the record.",
        notice=True,
    ),
    EventKind(
        "mx-changed",
        Source.CHECK,
        None,
        "the MX records changed",
        "The domain's MX host names differ from the previous run's; the event says whether the policy still "
        "lists every MX (a sender refuses an MX the policy does not list, under mode enforce).",
        "If the policy does not list the new MX hosts, add them to its mx lines and publish a new id.",
        notice=True,
        severity_note="info when the policy lists every MX; else error under enforce, warning otherwise",
    ),
    EventKind(
        "cert-expiry-30d",
        Source.CHECK,
        Severity.WARNING,
        "a certificate expires within 30 days",
        "The certificate of the policy host or of an MX host expires within 30 days.",
        "Renew the certificate (and automate renewal, e.g. ACME).",
    ),
    EventKind(
        "cert-expiry-14d",
        Source.CHECK,
        Severity.WARNING,
        "a certificate expires within 14 days",
        "The certificate of the policy host or of an MX host expires within 14 days (the 30-day event is "
        "cleared: only the nearest threshold is open).",
        "Renew the certificate now; check why automatic renewal did not.",
    ),
    EventKind(
        "cert-expiry-7d",
        Source.CHECK,
        Severity.ERROR,
        "a certificate expires within 7 days or has expired",
        "The certificate of the policy host or of an MX host expires within 7 days or has expired: then "
        "senders cannot refresh the policy, or refuse the MX under mode enforce. An expired certificate is "
        "this event, not also a finding event.",
        "Renew the certificate today and reload the server that presents it.",
    ),
    EventKind(
        "sts-record-gone",
        Source.CHECK,
        Severity.ERROR,
        "the _mta-sts record is gone",
        "The _mta-sts TXT record found at the previous run is absent now (an authoritative no; a failed lookup "
        "never counts as gone). Senders stop looking for policy updates; those holding the policy keep it until "
        "its max_age runs out.",
        "Publish the record again; to retire MTA-STS on purpose, serve mode none first (RFC 8461 §8.3).",
    ),
    EventKind(
        "policy-gone",
        Source.CHECK,
        Severity.ERROR,
        "the policy cannot be fetched any more",
        "The policy fetched at the previous run cannot be fetched now; the event says how the fetch failed. "
        "Senders keep a cached policy, but new senders and those whose copy expired get none.",
        "Make https://mta-sts.<domain>/.well-known/mta-sts.txt answer again (see the finding for the cause).",
    ),
    EventKind(
        "failure-spike",
        Source.REPORTS,
        Severity.WARNING,
        "the failure rate jumped against the domain's baseline",
        "In the TLS reports of the last days, the share of failed sessions is at least twice that of the "
        "baseline days before (mtasts report digest's rule), with at least 5 failed sessions.",
        "See which senders and result types fail (mtasts report summary --domain D) and fix the MX or policy.",
    ),
    EventKind(
        "new-failing-sender",
        Source.REPORTS,
        Severity.WARNING,
        "a sending organisation newly fails",
        "A sending organisation reports failed sessions to this domain in the last days and reported none in "
        "the baseline days before.",
        "Work with that sender: the result types in the event say what failed (mtasts report summary).",
    ),
    EventKind(
        "silent-reporter",
        Source.REPORTS,
        Severity.WARNING,
        "a reporter went silent",
        "An organisation that used to report daily has sent no report for this domain for the silence period "
        "(7 days by default), mtasts report digest's rule.",
        "Check that the TLSRPT record still names a working rua, and that mail from the reporter still arrives.",
    ),
    EventKind(
        "no-reports",
        Source.REPORTS,
        Severity.WARNING,
        "no TLS reports at all",
        "The store holds no report for this domain for the silence period, although the domain publishes a "
        "TLSRPT record (and has been monitored that long).",
        "Check the _smtp._tls record's rua and that reports reach the store (mtasts report ingest, report serve).",
    ),
)

EVENT_KINDS: Final[Mapping[str, EventKind]] = MappingProxyType({kind.code: kind for kind in _KINDS})
CHECK_CODES: Final = frozenset(code for code, kind in EVENT_KINDS.items() if kind.source is Source.CHECK)
REPORT_CODES: Final = frozenset(code for code, kind in EVENT_KINDS.items() if kind.source is Source.REPORTS)


@dataclass(frozen=True, slots=True)
class Condition:
    """Something that holds for ``domain`` at this run. ``subject`` tells apart conditions of one
    kind (a host, a finding, an organisation; ``""`` for the domain itself); ``data`` is what a
    later run needs to decide whether it still holds (the body's original hash, ...)."""

    domain: str
    code: str
    subject: str
    severity: Severity
    message: str
    fix: str
    data: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in EVENT_KINDS:
            raise ValueError(f"unknown event code {self.code!r}")

    @property
    def key(self) -> tuple[str, str]:
        return (self.code, self.subject)

    @property
    def kind(self) -> EventKind:
        return EVENT_KINDS[self.code]


@dataclass(frozen=True, slots=True)
class OpenEvent:
    """An event opened at ``opened_at`` and not cleared yet (``id``: its row in the history)."""

    id: int
    domain: str
    code: str
    subject: str
    severity: Severity
    message: str
    fix: str
    opened_at: datetime
    data: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.code, self.subject)

    @property
    def kind(self) -> EventKind:
        return EVENT_KINDS[self.code]

    def condition(self) -> Condition:
        """The condition this event was opened for (to keep it open when nothing is known)."""
        return Condition(self.domain, self.code, self.subject, self.severity, self.message, self.fix, self.data)


class TransitionKind(StrEnum):
    OPENED = "opened"
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class Transition:
    """An event opened or cleared at ``at``: what a notifier sends."""

    kind: TransitionKind
    event_id: int
    domain: str
    code: str
    subject: str
    severity: Severity
    message: str
    fix: str
    opened_at: datetime
    at: datetime

    def to_dict(self) -> dict[str, object]:
        """The JSON shape a webhook receives (keys are a public contract, see docs/monitor.md)."""
        kind = EVENT_KINDS[self.code]
        return {
            "id": self.event_id,
            "transition": self.kind.value,
            "domain": self.domain,
            "code": self.code,
            "subject": self.subject,
            "severity": self.severity.value,
            "title": kind.titled(cleared=self.kind is TransitionKind.CLEARED),
            "message": self.message,
            "explanation": kind.explanation,
            "fix": self.fix,
            "opened_at": self.opened_at.isoformat(),
            "at": self.at.isoformat(),
        }

    def to_text(self) -> str:
        """One line for a mail, a log or a terminal: :func:`printable`, since a subject or a
        message may quote a TLS report's sender or a server's reply."""
        mark = "NEW" if self.kind is TransitionKind.OPENED else "CLEARED"
        subject = f" [{self.subject}]" if self.subject else ""
        return printable(f"{mark} {self.severity.value} {self.domain}: {self.code}{subject}: {self.message}")


def events_table() -> str:
    """The table of every event kind as docs/monitor.md shows it (tests/monitor/test_docs.py checks it)."""
    rows = ["| code | from | severity | what | fix |", "|---|---|---|---|---|"]
    for kind in EVENT_KINDS.values():
        severity = kind.severity_note if kind.severity is None else kind.severity.value
        if kind.notice:
            severity += " (notice)"
        title = f"{kind.title} (cleared: {kind.cleared_title})" if kind.cleared_title else kind.title
        what = f"{title}: {kind.explanation}".replace("|", "\\|")
        fix = kind.fix.replace("|", "\\|")
        rows.append(f"| `{kind.code}` | {kind.source.value} | {severity} | {what} | {fix} |")
    return "\n".join(rows) + "\n"
