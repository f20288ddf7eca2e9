"""What a result page shows, taken from a :class:`~mtasts.check.inspect.DomainReport`. Pure.

Labels are English message ids (marked with :func:`~mtasts.web.i18n.N_`), translated by the
templates in the request's language. A finding's short meaning is its catalogue title
(:data:`mtasts.core.findings.CATALOGUE`), translated; its message and fix, and the verdict's
sentences, stay the inspector's English here and are translated as the page renders them (the
``finding_text`` filter: :mod:`mtasts.i18n`); its evidence lines are data, marked ``lang="en"``.

MTA-STS and TLS reporting are separate sections: a domain owner fixes them apart, and one
working does not mean the other does.
"""

from __future__ import annotations

from dataclasses import dataclass

from mtasts.check.inspect import DomainReport, mx_states
from mtasts.core.findings import CATALOGUE, Area, Finding
from mtasts.core.problems import Severity
from mtasts.core.verdict import Delivery
from mtasts.web.i18n import N_

__all__ = [
    "AREA_TITLES",
    "DELIVERY_TITLES",
    "PROBE_TITLES",
    "SEVERITY_TITLES",
    "STATUS_TITLES",
    "AddressRow",
    "FindingGroup",
    "FindingView",
    "MxRow",
    "ResultView",
    "result_view",
]

AREA_TITLES: dict[Area, str] = {
    Area.DOMAIN: N_("The domain"),
    Area.LOCAL: N_("This inspector's side"),
    Area.RECORD: N_("The _mta-sts TXT record"),
    Area.POLICY: N_("The policy file"),
    Area.MX: N_("MX hosts"),
    Area.TLSRPT: N_("The _smtp._tls TXT record"),
}

SEVERITY_TITLES: dict[Severity, str] = {
    Severity.ERROR: N_("error"),
    Severity.WARNING: N_("warning"),
    Severity.INFO: N_("note"),
}

STATUS_TITLES: dict[str, str] = {
    "ok": N_("no problems found"),
    "warning": N_("warnings"),
    "error": N_("errors"),
}

DELIVERY_TITLES: dict[Delivery, str] = {
    Delivery.VALIDATED: N_("Senders deliver over validated TLS (MTA-STS enforced)."),
    Delivery.NOT_ENFORCED: N_("Mail flows, but the policy is not enforced: TLS stays opportunistic."),
    Delivery.NO_POLICY: N_("Mail flows without MTA-STS: no policy applies."),
    Delivery.DEFER: N_("Senders would defer mail: no MX can be used."),
    Delivery.UNDELIVERABLE: N_("The domain accepts no mail."),
    Delivery.UNKNOWN: N_("Not known: the check could not find out."),
}

PROBE_TITLES: dict[str, str] = {
    "ok": N_("TLS works"),
    "unreachable": N_("cannot connect"),
    "timeout": N_("timed out"),
    "protocol": N_("SMTP protocol error"),
    "no-starttls": N_("no STARTTLS"),
    "starttls-refused": N_("STARTTLS refused"),
    "tls": N_("TLS failed"),
    "tls-failed": N_("TLS failed"),
    "internal": N_("internal error"),
    "not-probed": N_("not probed"),
    "no-address": N_("no address"),
    "partly-probed": N_("partly probed"),
    "probed": N_("probed"),
}
"""The per-address probe result (``ok`` or :class:`~mtasts.net.smtp.SmtpFailureKind`'s value)
and the per-host states of the ``mx_hosts`` JSON, as a word in the page's language (the code
is shown beside it, as the JSON has it)."""

SYMBOLS: dict[str, str] = {"error": "✗", "warning": "!", "info": "i", "ok": "✓"}
"""Shown beside each severity and status, so colour is never the only sign."""

_MTA_STS_AREAS = (Area.RECORD, Area.POLICY, Area.MX)
_GENERAL_AREAS = (Area.DOMAIN, Area.LOCAL)


@dataclass(frozen=True, slots=True)
class FindingView:
    code: str
    severity: str
    symbol: str
    title: str  # the catalogue's meaning: a message id
    message: str
    fix: str
    host: str | None
    address: str | None
    details: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FindingGroup:
    area: str  # a message id
    findings: tuple[FindingView, ...]


@dataclass(frozen=True, slots=True)
class AddressRow:
    """One address of an MX host and its probe's state (a key of :data:`PROBE_TITLES`), with
    why it was not probed (English, translated as the page renders it); ``address`` is empty
    for the state of a host none of whose addresses is listed."""

    address: str
    state: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class MxRow:
    """One MX host as the sender sees it: preference, addresses and the probe's result, and the
    verdict (``deliver`` and why)."""

    host: str
    preference: int | None
    addresses: tuple[AddressRow, ...]
    deliver: bool | None
    reason: str


@dataclass(frozen=True, slots=True)
class ResultView:
    domain: str
    status: str
    symbol: str
    counts: dict[str, int]
    checked_at: str
    elapsed: float
    general: tuple[FindingGroup, ...]
    mta_sts: tuple[FindingGroup, ...]
    tlsrpt: tuple[FindingGroup, ...]
    sts_record: str | None
    policy_url: str | None
    policy_mode: str | None
    policy_max_age: int | None
    policy_mx: tuple[str, ...]
    mx: tuple[MxRow, ...]
    tlsrpt_rua: tuple[str, ...]
    delivery: str
    delivery_title: str
    mail_flows: bool
    summary: str
    readiness: str | None


def _finding(finding: Finding) -> FindingView:
    return FindingView(
        code=finding.code,
        severity=finding.severity.value,
        symbol=SYMBOLS[finding.severity.value],
        title=CATALOGUE[finding.code][2],
        message=finding.message,
        fix=finding.fix,
        host=finding.host,
        address=finding.address,
        details=finding.details,
    )


def _groups(report: DomainReport, areas: tuple[Area, ...]) -> tuple[FindingGroup, ...]:
    groups = []
    for area in areas:
        found = tuple(_finding(f) for f in report.findings if f.area is area)
        if found:
            groups.append(FindingGroup(AREA_TITLES[area], found))
    return tuple(groups)


def _mx_rows(report: DomainReport) -> tuple[MxRow, ...]:
    verdicts = {m.host: m for m in report.verdict.mx}
    rows: list[MxRow] = []
    seen: set[str] = set()
    if report.observations is not None:
        for state in mx_states(report.observations):
            host = str(state["host"])
            seen.add(host)
            entries = state["addresses"]
            assert isinstance(entries, list)
            addresses = tuple(
                AddressRow(str(e["address"]), str(e.get("result") or e["state"]), str(e.get("reason") or ""))
                for e in entries
            ) or (AddressRow("", str(state["state"]), str(state["reason"] or "")),)
            preference = state["preference"]
            verdict = verdicts.get(host)
            rows.append(
                MxRow(
                    host,
                    preference if isinstance(preference, int) else None,
                    addresses,
                    None if verdict is None else verdict.deliver,
                    "" if verdict is None else verdict.reason,
                )
            )
    for host, verdict in verdicts.items():
        if host not in seen:
            rows.append(MxRow(host, None, (), verdict.deliver, verdict.reason))
    return tuple(rows)


def result_view(report: DomainReport) -> ResultView:
    """Everything a result page shows, in the order it shows it."""
    data = report.to_dict()
    status = str(data["status"])
    analysis = report.analysis
    policy = None if analysis is None else analysis.policy
    verdict = report.verdict
    return ResultView(
        domain=report.domain,
        status=status,
        symbol=SYMBOLS[status],
        counts={s.value: sum(f.severity is s for f in report.findings) for s in Severity},
        checked_at=report.checked_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        elapsed=report.elapsed,
        general=_groups(report, _GENERAL_AREAS),
        mta_sts=_groups(report, _MTA_STS_AREAS),
        tlsrpt=_groups(report, (Area.TLSRPT,)),
        sts_record=None if analysis is None or analysis.sts_record is None else analysis.sts_record.to_text(),
        policy_url=None if report.observations is None else report.observations.fetch.url,
        policy_mode=None if policy is None else policy.mode.value,
        policy_max_age=None if policy is None else policy.max_age,
        policy_mx=() if policy is None else tuple(policy.mx),
        mx=_mx_rows(report),
        tlsrpt_rua=() if analysis is None or analysis.tlsrpt is None else tuple(analysis.tlsrpt.rua),
        delivery=verdict.delivery.value,
        delivery_title=DELIVERY_TITLES[verdict.delivery],
        mail_flows=verdict.mail_flows,
        summary=verdict.summary,
        readiness=verdict.readiness,
    )
