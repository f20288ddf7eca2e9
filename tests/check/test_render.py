"""``mtasts check -o FILE.csv``'s rows (mtasts.check.render.csv_rows): what a remote server
names or says lands in the host and message columns, so a cell a spreadsheet would run as a
formula is written as text."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from mtasts.check.inspect import DomainReport
from mtasts.check.render import csv_rows
from mtasts.core.findings import Finding
from mtasts.core.problems import Severity
from mtasts.core.verdict import unknown_verdict


def test_a_hostile_mx_name_and_reply_are_written_as_text() -> None:
    finding = Finding(
        "mx-no-starttls",
        Severity.ERROR,
        '=HYPERLINK("http://evil.example/") does not offer STARTTLS',
        "offer STARTTLS",
        host="=cmd|' /C calc'!A0.example",
        address="192.0.2.25",
    )
    report = DomainReport(
        "example.com", (finding,), unknown_verdict("x"), None, None, 0.1, datetime(2026, 12, 1, tzinfo=UTC)
    )
    (row,) = list(csv.reader(io.StringIO(csv_rows([report]))))
    assert row[0] == "example.com"
    assert row[3] == "mx-no-starttls"
    assert row[5] == "'=cmd|' /C calc'!A0.example"
    assert row[6] == "192.0.2.25"
    assert row[7] == '\'=HYPERLINK("http://evil.example/") does not offer STARTTLS'
