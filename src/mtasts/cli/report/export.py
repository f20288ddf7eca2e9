"""``mtasts report export``: the stored reports as CSV or JSON."""

from __future__ import annotations

import csv
import io
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

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


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"


CSV_COLUMNS = (
    "day",
    "start",
    "end",
    "organization_name",
    "report_id",
    "policy_type",
    "policy_domain",
    "total_successful",
    "total_failure",
    "result_type",
    "failed_session_count",
    "sending_mta_ip",
    "receiving_mx_hostname",
    "receiving_ip",
    "failure_reason_code",
)


def export_command(
    format_: Annotated[ExportFormat, typer.Option("--format", help="csv: one row per policy and failure detail.")],
    domain: DomainOption = None,
    days: DaysOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    db: DbOption = None,
) -> None:
    """Export the stored reports (normalised) as CSV or JSON."""
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
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for item in stored:
            report = item.report.to_dict()
            head = [item.report.day.isoformat(), report["date_range"]["start"], report["date_range"]["end"]]
            head += [report["organization_name"], report["report_id"]]
            for policy in report["policies"]:
                if wanted is not None and policy["policy_domain"] != wanted:
                    continue
                row = [*head, policy["policy_type"], policy["policy_domain"] or ""]
                row += [policy["total_successful"], policy["total_failure"]]
                details = policy["failure_details"] or [None]
                for detail in details:
                    tail = (
                        ["", "", "", "", "", ""]
                        if detail is None
                        else [
                            detail["result_type"],
                            detail["failed_session_count"],
                            detail["sending_mta_ip"] or "",
                            detail["receiving_mx_hostname"] or "",
                            detail["receiving_ip"] or "",
                            detail["failure_reason_code"] or "",
                        ]
                    )
                    writer.writerow([*row, *tail])
        text = buffer.getvalue()
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_output(output, text)
