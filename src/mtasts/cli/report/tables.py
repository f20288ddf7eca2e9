"""The tables ``mtasts report`` prints: one report, the per-domain summary, failing senders, result types."""

from __future__ import annotations

from rich.table import Table

from mtasts.core.tlsrpt_report import TlsRptReport
from mtasts.report.analysis import (
    RESULT_TYPE_HELP,
    DomainSummary,
    Readiness,
    ReadinessVerdict,
    SenderIssue,
    sparkline,
)


def report_table(label: str, report: TlsRptReport) -> Table:
    dates = report.to_dict()["date_range"]
    table = Table(
        title=f"[heading]{report.organization_name}[/] — {report.report_id or '(no report-id)'}",
        caption=f"{dates['start']} → {dates['end']} · {label}",
        title_justify="left",
        caption_justify="left",
    )
    table.add_column("policy", no_wrap=True)
    table.add_column("domain")
    table.add_column("ok", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("failures: result type ×sessions, sending MTA → receiving MX")
    for policy in report.policies:
        lines = []
        for detail in policy.failure_details:
            line = f"[severity.error]{detail.result_type}[/] ×{detail.failed_session_count}"
            ends = [detail.sending_mta_ip or "", detail.receiving_mx_hostname or detail.receiving_ip or ""]
            if any(ends):
                line += f"  {ends[0] or '?'} → {ends[1] or '?'}"
            if detail.failure_reason_code:
                line += f"\n  [code]{detail.failure_reason_code}[/]"
            lines.append(line)
        table.add_row(
            policy.policy_type.value,
            policy.policy_domain or "(none)",
            str(policy.total_successful),
            f"[severity.error]{policy.total_failure}[/]" if policy.total_failure else "0",
            "\n".join(lines),
        )
    return table


_VERDICT_STYLE = {
    ReadinessVerdict.READY: "ok",
    ReadinessVerdict.ALMOST: "severity.warning",
    ReadinessVerdict.NOT_READY: "severity.error",
    ReadinessVerdict.NO_POLICY_SEEN: "severity.warning",
    ReadinessVerdict.TOO_FEW_SESSIONS: "code",
    ReadinessVerdict.NO_DATA: "code",
}


def _rate(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.1%}" if rate < 1 else "100%"


def domains_table(summaries: list[DomainSummary], verdicts: dict[str | None, Readiness]) -> Table:
    table = Table(title="TLS sessions by policy domain", title_justify="left")
    table.add_column("domain")
    table.add_column("ok", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("success", justify="right")
    table.add_column("daily success (30 days)", no_wrap=True)
    table.add_column("last report")
    table.add_column("enforce?")
    for summary in summaries:
        verdict = verdicts[summary.policy_domain]
        table.add_row(
            summary.policy_domain or "(none)",
            str(summary.totals.successful),
            f"[severity.error]{summary.totals.failed}[/]" if summary.totals.failed else "0",
            _rate(summary.totals.rate),
            sparkline(summary.daily, until=verdict.until),
            verdict.until.isoformat(),
            f"[{_VERDICT_STYLE[verdict.verdict]}]{verdict.verdict.value}[/]",
        )
    return table


def _counts(counts: dict[str, int] | object, limit: int = 3) -> str:
    assert isinstance(counts, dict)
    items = list(counts.items())
    text = ", ".join(f"{name} ×{count}" for name, count in items[:limit])
    return text + (f", +{len(items) - limit} more" if len(items) > limit else "")


def senders_table(senders: list[SenderIssue]) -> Table:
    table = Table(title="Senders to work with", title_justify="left")
    table.add_column("domain")
    table.add_column("sender")
    table.add_column("failed", justify="right")
    table.add_column("how")
    table.add_column("since")
    table.add_column("last")
    table.add_column("from / to")
    for issue in senders:
        ends = " → ".join(
            part for part in (_counts(dict(issue.sending_ips), 2), _counts(dict(issue.receiving_mxs), 2)) if part
        )
        how = _counts(dict(issue.result_types)) or "(no failure details)"
        if issue.reasons:
            how += "\n[code]" + "; ".join(issue.reasons[:2]) + "[/]"
        table.add_row(
            issue.policy_domain or "(none)",
            issue.organization_name,
            f"[severity.error]{issue.failed_sessions}[/]",
            how,
            issue.first_failure.isoformat(),
            issue.last_failure.isoformat(),
            ends,
        )
    return table


def result_types_table(summaries: list[DomainSummary]) -> Table:
    table = Table(title="Failures by result type", title_justify="left")
    table.add_column("domain")
    table.add_column("result type")
    table.add_column("sessions", justify="right")
    table.add_column("what it means")
    for summary in summaries:
        for kind, count in summary.by_result_type.items():
            table.add_row(
                summary.policy_domain or "(none)",
                f"[severity.error]{kind}[/]",
                str(count),
                RESULT_TYPE_HELP.get(kind, "not in the IANA registry: ask the sender"),
            )
    return table
