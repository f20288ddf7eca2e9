"""The TLSRPT sink: keeps the reports POSTed to ``https://tlsrpt.<zone>/v1/report`` (RFC 8460 §3).

The sink does not judge reports (that is :mod:`mtasts.report`'s job); it stores the bytes and
headers exactly as received, so tests can check what a reporter sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from mtasts.lab.https import Request
from mtasts.lab.plan import REPORT_PATH, HttpAnswer

__all__ = ["Report", "ReportSink"]


@dataclass(frozen=True, slots=True)
class Report:
    """One POSTed report, as received."""

    host: str
    path: str
    content_type: str | None
    content_encoding: str | None
    body: bytes


class ReportSink:
    """Accepts ``POST`` on the report path; keeps at most ``max_reports`` reports (oldest dropped)."""

    def __init__(self, host: str, *, max_reports: int = 1000) -> None:
        self.host = host
        self.max_reports = max_reports
        self.reports: list[Report] = []

    def handle(self, request: Request) -> HttpAnswer:
        """Store a report (201) or say why not."""
        if request.path != REPORT_PATH:
            return HttpAnswer(404, b"not found\n")
        if request.method != "POST":
            return HttpAnswer(405, b"POST a report here\n")
        self.reports.append(
            Report(
                host=self.host,
                path=request.path,
                content_type=request.header("content-type"),
                content_encoding=request.header("content-encoding"),
                body=request.body,
            )
        )
        del self.reports[: -self.max_reports]
        return HttpAnswer(201, b"")
