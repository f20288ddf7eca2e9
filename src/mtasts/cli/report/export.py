"""``mtasts report export``: the stored reports as CSV (policy totals or failure details) or JSON.

The two CSV tables are normalised so that every numeric column can be summed as it is: a
policy's session totals are on its one row of ``csv`` and nowhere else, and the failure details
are the rows of ``csv-failures``, each with its own ``failed_session_count``. The earlier single
table repeated the totals on every failure row of a policy, so a spreadsheet sum counted them
several times.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterable, Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer

from mtasts.cli.report._common import (
    DaysOption,
    DbOption,
    DomainOption,
    check_output,
    json_text,
    normalise_domain,
    reading,
    since_days,
    write_output,
)
from mtasts.core.spreadsheet import safe_row

if TYPE_CHECKING:  # the store (SQLAlchemy) loads only when a command opens it
    from mtasts.store.interface import StoredReport

__all__ = ["FAILURE_COLUMNS", "POLICY_COLUMNS", "ExportFormat", "export_command", "failure_rows", "policy_rows"]


class ExportFormat(StrEnum):
    CSV = "csv"
    CSV_FAILURES = "csv-failures"
    JSON = "json"


REPORT_KEY: Final = ("organization_name", "report_id", "policy_index")
"""What joins a failure row to its policy row: the report (organisation and report-id, which
identify a stored report) and the policy's position in the report's ``policies``."""

POLICY_COLUMNS: Final = (
    "day",
    "start",
    "end",
    *REPORT_KEY,
    "policy_type",
    "policy_domain",
    "total_successful",
    "total_failure",
    "failure_detail_rows",
)
FAILURE_COLUMNS: Final = (
    "day",
    *REPORT_KEY,
    "policy_type",
    "policy_domain",
    "result_type",
    "failed_session_count",
    "sending_mta_ip",
    "receiving_mx_hostname",
    "receiving_mx_helo",
    "receiving_ip",
    "failure_reason_code",
    "additional_information",
)

_FORMAT_HELP = (
    "csv: one row per report and policy, with its session totals (sum total_successful and "
    "total_failure over the rows for the sessions); csv-failures: one row per failure detail (sum "
    "failed_session_count), joined to csv on organization_name, report_id, policy_index; json: "
    "the reports as stored."
)


def _text(value: object) -> object:
    return "" if value is None else value


def policy_rows(stored: Iterable[StoredReport], domain: str | None = None) -> Iterator[Sequence[object]]:
    """The rows of ``csv`` (:data:`POLICY_COLUMNS`): one per policy of each report, only the
    policies of ``domain`` when it is given; ``failure_detail_rows`` is how many rows of
    ``csv-failures`` belong to the policy."""
    for item in stored:
        report = item.report
        for index, policy in enumerate(report.policies):
            if domain is not None and policy.policy_domain != domain:
                continue
            yield (
                report.day.isoformat(),
                *_date_range(item),
                report.organization_name,
                report.report_id,
                index,
                policy.policy_type.value,
                _text(policy.policy_domain),
                policy.total_successful,
                policy.total_failure,
                len(policy.failure_details),
            )


def failure_rows(stored: Iterable[StoredReport], domain: str | None = None) -> Iterator[Sequence[object]]:
    """The rows of ``csv-failures`` (:data:`FAILURE_COLUMNS`): one per failure detail."""
    for item in stored:
        report = item.report
        for index, policy in enumerate(report.policies):
            if domain is not None and policy.policy_domain != domain:
                continue
            for detail in policy.failure_details:
                yield (
                    report.day.isoformat(),
                    report.organization_name,
                    report.report_id,
                    index,
                    policy.policy_type.value,
                    _text(policy.policy_domain),
                    str(detail.result_type),
                    detail.failed_session_count,
                    _text(detail.sending_mta_ip),
                    _text(detail.receiving_mx_hostname),
                    _text(detail.receiving_mx_helo),
                    _text(detail.receiving_ip),
                    _text(detail.failure_reason_code),
                    _text(detail.additional_information),
                )


def _date_range(item: StoredReport) -> tuple[str, str]:
    dates = item.report.to_dict()["date_range"]
    return dates["start"], dates["end"]


def _csv(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(safe_row(row) for row in rows)  # names and reasons come from anyone's reports
    return buffer.getvalue()


def export_command(
    format_: Annotated[ExportFormat, typer.Option("--format", help=_FORMAT_HELP)],
    domain: DomainOption = None,
    days: DaysOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    db: DbOption = None,
) -> None:
    """Export the stored reports (normalised) as CSV or JSON.

    Every numeric column of a CSV export sums to what its name says: --format csv has one row
    per (report, policy), so the sum of total_failure is the number of failed sessions; --format
    csv-failures has one row per failure detail, so the sum of failed_session_count is the
    number of sessions the failure details account for (a sender may detail fewer than it
    counts in total_failure). The two join on organization_name, report_id and policy_index."""
    since, wanted = since_days(days), normalise_domain(domain)
    if output is not None:
        check_output(output)
    with reading(db) as store:
        stored = list(store.reports(since=since, domain=wanted))
    if format_ is ExportFormat.JSON:
        text = json_text(
            [
                {**item.report.to_dict(), "source": item.source, "received_at": item.received_at.isoformat()}
                for item in stored
            ]
        )
    elif format_ is ExportFormat.CSV:
        text = _csv(POLICY_COLUMNS, policy_rows(stored, wanted))
    else:
        text = _csv(FAILURE_COLUMNS, failure_rows(stored, wanted))
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_output(output, text)
