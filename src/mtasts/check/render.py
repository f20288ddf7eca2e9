"""Renderers for inspection reports: Rich for terminals, JSON, JSON Lines and CSV.

They all show the same data (``DomainReport.to_dict()`` / ``Finding``); the Rich one groups
findings by area and prints the fix under each. Its lines wrap at word boundaries under their
own indentation on a terminal, names (domains, MX hosts) are never split, and where output is
not a terminal each message stays on one line (the consoles of :mod:`mtasts.cli.output`).
Messages quote records and what servers said, which the checked domain's operator writes: the
Rich renderer shows them :func:`~mtasts.core.untrusted.printable` (an ESC sequence in an SMTP
greeting is written as ``\x1b``, not obeyed by the terminal).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from mtasts.check.inspect import DomainReport
from mtasts.core.findings import CATALOGUE, Area, severity_text
from mtasts.core.problems import Severity
from mtasts.core.spreadsheet import safe_row
from mtasts.core.untrusted import printable
from mtasts.i18n import Translator, current

__all__ = ["CSV_FIELDS", "csv_rows", "findings_table", "render_report", "report_json_line"]

CSV_FIELDS = ("domain", "status", "delivery", "code", "severity", "host", "address", "message", "fix")
_SYMBOL = {Severity.ERROR: "✗", Severity.WARNING: "!", Severity.INFO: "i"}


def render_report(report: DomainReport, tr: Translator | None = None) -> RenderableType:
    """One domain as a Rich renderable, in ``tr``'s language (default: ``--lang``/``LANG``,
    :func:`mtasts.i18n.current`); codes and the facts' data stay as they are."""
    tr = tr or current()
    parts: list[RenderableType] = [_headline(report, tr)]
    facts = _facts(report, tr)
    if facts is not None:
        parts.append(facts)
    for area in Area:
        findings = [f for f in report.findings if f.area is area]
        if not findings:
            continue
        parts.append(Text(f"  {tr.gettext(area.value)}", style="heading"))
        for finding in findings:
            line = Text()
            line.append(
                f"{_SYMBOL[finding.severity]} {tr.gettext(finding.severity.value)} ",
                style=f"severity.{finding.severity.value}",
            )
            line.append(finding.code, style="code")
            line.append(f"  {printable(tr.text(finding.message))}")
            parts.append(_indented(line, 4))
            for detail in finding.details:
                parts.append(_indented(Text(_evidence(detail, tr), style="dim"), 8))
            parts.append(_indented(Text.assemble((tr.gettext("fix: "), "fix"), printable(tr.text(finding.fix))), 6))
    parts.append(_verdict(report, tr))
    return Group(*parts, Text(""))


def _indented(renderable: RenderableType, left: int) -> Padding:
    """``renderable`` indented by ``left`` columns, wrapped lines too (a hanging indent)."""
    return Padding(renderable, (0, 0, 0, left), expand=False)


def _headline(report: DomainReport, tr: Translator) -> Text:
    worst = report.worst
    counts = {s: sum(f.severity is s for f in report.findings) for s in Severity}
    text = Text()
    text.append(printable(report.domain), style="heading")
    if worst is None:
        text.append(f"  ✓ {tr.gettext('no problems')}", style="ok")
    else:
        forms = {
            Severity.ERROR: ("%(num)d error", "%(num)d errors"),
            Severity.WARNING: ("%(num)d warning", "%(num)d warnings"),
        }
        summary = ", ".join(
            tr.ngettext(*forms[s], n) % {"num": n} for s, n in counts.items() if n and s is not Severity.INFO
        )
        text.append(f"  {_SYMBOL[worst]} {summary}", style=f"severity.{worst.value}")
    text.append(f"  ({report.elapsed:.2f} s)", style="dim")
    return text


def _evidence(line: str, tr: Translator) -> str:
    """A line of evidence in ``tr``'s language when the catalogue knows all of it, else as it is
    (it quotes records and what servers said: half a translation would misquote them)."""
    translated = tr.translate(line)
    return printable(translated.text if translated.complete else line)


def _facts(report: DomainReport, tr: Translator) -> RenderableType | None:
    analysis, observations = report.analysis, report.observations
    if analysis is None or observations is None:
        return None
    table = _Facts()
    record = analysis.sts_record.to_text() if analysis.sts_record else "—"
    table.add_row("_mta-sts", record)
    policy = analysis.policy
    if policy is not None:
        mx = ", ".join(policy.mx) or tr.gettext("no mx")
        shown = {"mode": policy.mode.value, "max_age": policy.max_age, "mx": mx}
        table.add_row(tr.gettext("policy"), tr.gettext("mode %(mode)s, max_age %(max_age)s, mx: %(mx)s") % shown)
    else:
        table.add_row(tr.gettext("policy"), "—")
    for probe in observations.probes:
        tls = probe.tls
        if probe.ok and tls is not None and tls.certificate is not None:
            valid = {"version": tls.version, "date": f"{tls.certificate.not_after:%Y-%m-%d}"}
            state = tr.gettext("%(version)s, certificate valid until %(date)s") % valid
        else:
            state = _evidence(probe.detail, tr) if probe.detail else (probe.failure.value if probe.failure else "")
        table.add_row(f"MX {probe.host}", f"{probe.address}: {state}")
    tlsrpt = ", ".join(analysis.tlsrpt.rua) if analysis.tlsrpt else "—"
    table.add_row(tr.gettext("TLS reports"), tlsrpt)
    return _indented(table, 2)


def _verdict(report: DomainReport, tr: Translator) -> Group:
    verdict = report.verdict
    style = (
        "ok" if verdict.mail_flows else "severity.warning" if verdict.delivery.value == "unknown" else "severity.error"
    )
    summary = Text.assemble((tr.gettext("verdict: "), "heading"), (printable(tr.text(verdict.summary)), style))
    lines: list[RenderableType] = [_indented(summary, 2)]
    for mx in verdict.mx:
        reason = Text(printable(f"{mx.host}: {tr.text(mx.reason)}"), style="ok" if mx.deliver else "severity.error")
        lines.append(_indented(reason, 4))
    if verdict.readiness:
        readiness = Text.assemble((tr.gettext("enforce readiness: "), "heading"), printable(tr.text(verdict.readiness)))
        lines.append(_indented(readiness, 2))
    return Group(*lines)


class _Facts:
    """The facts under a domain's headline, "label  value": labels (names such as an MX host)
    are never split and the values wrap at word boundaries beside them (a host name in a value is
    a word: never split either); when a terminal is too narrow for that, each value goes under
    its label instead."""

    VALUE_FLOOR = 20  # narrower values would be a column of single words

    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []

    def add_row(self, label: str, value: str) -> None:
        self.rows.append((printable(label), printable(value)))  # records and replies: the domain's text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        label_width = max((len(label) for label, _ in self.rows), default=0)
        longest_word = max((len(word) for _, value in self.rows for word in value.split()), default=0)
        if label_width + 2 + max(self.VALUE_FLOOR, longest_word) <= options.max_width:
            grid = Table.grid(padding=(0, 2))
            grid.add_column(style="dim", no_wrap=True)
            grid.add_column(overflow="fold")
            for label, value in self.rows:
                grid.add_row(Text(label), Text(value))  # Text: "[/bold]" in an SMTP greeting is no markup
            yield grid
            return
        for label, value in self.rows:
            yield Text(label, style="dim")
            yield _indented(Text(value), 2)


def report_json_line(report: DomainReport) -> str:
    return json.dumps(report.to_dict(), ensure_ascii=False, separators=(",", ":"))


def csv_rows(reports: Iterable[DomainReport]) -> str:
    """CSV text, one row per finding (a clean domain gets one row with an empty code). Messages
    quote what remote servers said: a cell a spreadsheet would run as a formula is made text
    (:mod:`mtasts.core.spreadsheet`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for report in reports:
        status = "error" if report.worst is Severity.ERROR else "warning" if report.worst else "ok"
        base = (report.domain, status, report.verdict.delivery.value)
        if not report.findings:
            writer.writerow(safe_row((*base, "", "", "", "", "", "")))
        for f in report.findings:
            cells = (*base, f.code, f.severity.value, f.host or "", f.address or "", f.message, f.fix)
            writer.writerow(safe_row(cells))
    return buffer.getvalue()


def findings_table() -> str:
    """The finding-code table of docs/check.md, generated from the catalogue
    (tests/check/test_docs.py keeps the two equal)."""
    lines = ["| code | area | severity | meaning |", "|---|---|---|---|"]
    for code, (area, _, title) in CATALOGUE.items():
        lines.append(f"| `{code}` | {area.value} | {severity_text(code)} | {title} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m mtasts.check.render: print the table for docs/check.md
    print(findings_table(), end="")
