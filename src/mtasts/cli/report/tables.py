"""The tables ``mtasts report`` prints: one report, the per-domain summary, failing senders, result types.

They are :class:`~mtasts.cli.output.FitTable` s: names, counts, dates, verdicts and result types
are data (never split), explanations are prose (wrapped at word boundaries), and the daily
sparkline is decoration: it shows fewer days, then none, before anything else has to give.
Headers, titles and explanations are in the language of --lang / LANG (:mod:`mtasts.i18n`);
names, counts, result types and verdicts are data and stay as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from mtasts.cli.output import Column, Fit, FitTable, literal
from mtasts.core.tlsrpt_report import TlsRptReport
from mtasts.i18n import current
from mtasts.report.analysis import (
    RESULT_TYPE_HELP,
    DomainSummary,
    Readiness,
    ReadinessVerdict,
    SenderIssue,
    sparkline,
)

SPARKLINE_DAYS = (30, 14, 7)  # the days the sparkline can show, as the width allows


def report_table(label: str, report: TlsRptReport) -> FitTable:
    dates, say = report.to_dict()["date_range"], current().gettext
    table = FitTable(
        Column(say("domain"), Fit.DATA),
        Column(say("policy"), Fit.DATA),
        Column(say("ok"), Fit.DATA, justify="right"),
        Column(say("failed"), Fit.DATA, justify="right"),
        Column(say("failures: result type ×sessions, sending MTA → receiving MX")),
        title=f"{literal(report.organization_name)} — {literal(report.report_id or say('(no report-id)'))}",
        caption=literal(f"{dates['start']} → {dates['end']} · {label}"),  # the file path, whole
    )
    for policy in report.policies:
        lines = []
        for detail in policy.failure_details:
            line = f"[severity.error]{literal(detail.result_type)}[/] ×{detail.failed_session_count}"
            ends = [detail.sending_mta_ip or "", detail.receiving_mx_hostname or detail.receiving_ip or ""]
            if any(ends):
                line += literal(f"  {ends[0] or '?'} → {ends[1] or '?'}")
            if detail.failure_reason_code:
                line += f"\n  [code]{literal(detail.failure_reason_code)}[/]"
            lines.append(line)
        table.add_row(
            literal(policy.policy_domain or say("(none)")),
            policy.policy_type.value,
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


def domains_table(summaries: list[DomainSummary], verdicts: dict[str | None, Readiness]) -> FitTable:
    say = current().gettext
    table = FitTable(
        Column(say("domain"), Fit.DATA),
        Column(say("ok"), Fit.DATA, justify="right"),
        Column(say("failed"), Fit.DATA, justify="right"),
        Column(say("success"), Fit.DATA, justify="right"),
        Column(
            lambda days: say("daily success (%(days)s days)") % {"days": days}, Fit.DECORATIVE, sizes=SPARKLINE_DAYS
        ),
        Column(say("last report"), Fit.DATA),
        Column(say("enforce?"), Fit.DATA),
        title=say("TLS sessions by policy domain"),
    )
    for summary in summaries:
        verdict = verdicts[summary.policy_domain]
        table.add_row(
            literal(summary.policy_domain or say("(none)")),
            str(summary.totals.successful),
            f"[severity.error]{summary.totals.failed}[/]" if summary.totals.failed else "0",
            _rate(summary.totals.rate),
            _sparkline(summary, verdict.until),
            verdict.until.isoformat(),
            f"[{_VERDICT_STYLE[verdict.verdict]}]{verdict.verdict.value}[/]",
        )
    return table


def _sparkline(summary: DomainSummary, until: date) -> Callable[[int], str]:
    """The domain's daily success drawn over as many days as the table has room for."""
    return lambda days: sparkline(summary.daily, until=until, width=days)


def _counts(counts: dict[str, int] | object, limit: int = 3) -> str:
    assert isinstance(counts, dict)
    items = list(counts.items())
    text = ", ".join(f"{name} ×{count}" for name, count in items[:limit])
    more = current().gettext(", +%(count)s more") % {"count": len(items) - limit}
    return text + (more if len(items) > limit else "")


def senders_table(senders: list[SenderIssue]) -> FitTable:
    say = current().gettext
    table = FitTable(
        Column(say("domain"), Fit.DATA),
        Column(say("sender"), Fit.DATA),
        Column(say("failed"), Fit.DATA, justify="right"),
        Column(say("how")),
        Column(say("since"), Fit.DATA),
        Column(say("last"), Fit.DATA),
        Column(say("from / to")),
        title=say("Senders to work with"),
    )
    for issue in senders:
        ends = " → ".join(
            part for part in (_counts(dict(issue.sending_ips), 2), _counts(dict(issue.receiving_mxs), 2)) if part
        )
        how = literal(_counts(dict(issue.result_types)) or say("(no failure details)"))
        if issue.reasons:
            how += "\n[code]" + literal("; ".join(issue.reasons[:2])) + "[/]"
        table.add_row(
            literal(issue.policy_domain or say("(none)")),
            literal(issue.organization_name),
            f"[severity.error]{issue.failed_sessions}[/]",
            how,
            issue.first_failure.isoformat(),
            issue.last_failure.isoformat(),
            literal(ends),
        )
    return table


def result_types_table(summaries: list[DomainSummary]) -> FitTable:
    tr = current()
    say = tr.gettext
    table = FitTable(
        Column(say("domain"), Fit.DATA),
        Column(say("result type"), Fit.DATA),
        Column(say("sessions"), Fit.DATA, justify="right"),
        Column(say("what it means")),
        title=say("Failures by result type"),
    )
    for summary in summaries:
        for kind, count in summary.by_result_type.items():
            table.add_row(
                literal(summary.policy_domain or say("(none)")),
                f"[severity.error]{literal(kind)}[/]",
                str(count),
                literal(tr.text(RESULT_TYPE_HELP.get(kind, "not in the IANA registry: ask the sender"))),
            )
    return table
