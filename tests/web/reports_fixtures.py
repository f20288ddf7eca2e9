"""Helpers of the report-page tests: the shared TLSRPT samples ingested into a fresh store, the
app over it (in-process), and what the samples say, computed from the files themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from mtasts.core.tlsrpt_report import TlsRptReport
from mtasts.report.ingest import ingest_paths
from mtasts.report.mail import parse_any
from mtasts.store.interface import ReportStoreProtocol
from mtasts.store.store import ReportStore
from mtasts.web import WebSettings, create_app
from tests.conftest import TLSRPT_SAMPLES, require_shared

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
"""The tests' clock: a few days after the newest sample."""


def fill(store: ReportStoreProtocol) -> None:
    """Every readable sample into ``store`` (the unreadable ones are set aside, as by ingest)."""
    require_shared(TLSRPT_SAMPLES)
    for _ in ingest_paths(store, [TLSRPT_SAMPLES], clock=lambda: NOW):
        pass


def sample_store(folder: Path) -> str:
    """A fresh SQLite store under ``folder`` holding the samples: its URL."""
    url = f"sqlite:///{folder / 'reports.sqlite3'}"
    with ReportStore(url) as store:
        fill(store)
    return url


def sample_reports() -> list[TlsRptReport]:
    """The samples' reports, read from the files (once each, as the store dedups them)."""
    require_shared(TLSRPT_SAMPLES)
    found: dict[tuple[str, str], TlsRptReport] = {}
    for path in sorted(TLSRPT_SAMPLES.rglob("*")):
        if not path.is_file() or path.suffix == ".md":
            continue
        try:
            reports = parse_any(path.read_bytes())
        except ValueError:
            continue
        for report in reports:
            found.setdefault((report.organization_name, report.report_id or report.digest), report)
    return list(found.values())


@dataclass(frozen=True, slots=True)
class Expected:
    """The samples' sessions by the rule of docs/web.md: a report's sts result for a domain is
    left out of the totals when the same report holds a tlsa result for that domain."""

    successful: int
    failed: int
    double_counted: int


def expected_totals(reports: list[TlsRptReport]) -> Expected:
    ok = bad = double = 0
    for report in reports:
        tlsa = {p.policy_domain for p in report.policies if p.policy_type.value == "tlsa"}
        for policy in report.policies:
            if policy.policy_type.value == "sts" and policy.policy_domain in tlsa:
                double += policy.total_successful + policy.total_failure
                continue
            ok += policy.total_successful
            bad += policy.total_failure
    return Expected(ok, bad, double)


@asynccontextmanager
async def app_client(url: str | None, **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app over the store at ``url`` with the tests' clock, and a client calling it in-process."""
    app = create_app(WebSettings(db=url, **options))
    app.state.reports.clock = lambda: NOW
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://reports.test") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client
    finally:
        app.state.reports.close()
        await app.state.checks.close()
