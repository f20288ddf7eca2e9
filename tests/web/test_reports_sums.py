"""The view of every domain, read through ``ReportStoreProtocol.dashboard`` (the day totals
summed by the store), is byte for byte the view computed from the whole roll-up, as before:
on SQLite and in memory, for everything stored and for periods."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from mtasts.store.interface import ReportStoreProtocol
from mtasts.store.memory import MemoryReportStore
from mtasts.store.store import ReportStore
from mtasts.web.reports import CSV_TABLES, Period, ReportService, readiness_window, report_view, view_csv, view_json
from tests.store.test_store import NOW, generated_reports

TODAY = date(2026, 11, 21)  # the generated reports cover 2026-11-01 to 11-20


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ReportStoreProtocol:
    made: ReportStoreProtocol = (
        ReportStore(f"sqlite:///{tmp_path / 'reports.sqlite3'}") if request.param == "sqlite" else MemoryReportStore()
    )
    made.open()
    reports = generated_reports(200, seed=3)
    for number in range(4):
        made.add_reports(reports[number::4], source="g", now=NOW)
    return made


@pytest.mark.parametrize("days", [None, 1, 2, 7, 30, 365])  # 1: today only, no reports
def test_the_view_of_every_domain_is_the_view_of_the_whole_rollup(store: ReportStoreProtocol, days: int | None) -> None:
    period = Period(days, TODAY)
    service = ReportService(lambda: store, clock=lambda: datetime(2026, 11, 21, 9, 0, tzinfo=UTC))
    view = service.view(period, None)
    rollup = store.rollup(since=period.since)
    until, window = readiness_window(period)
    assert store.dashboard(since=period.since, until=until, window=window).rollup.days == ()
    before = report_view(rollup, store.reporters(since=period.since), period=period, store=store.display_url)
    assert view_json(view) == view_json(before)
    for table in CSV_TABLES:
        assert view_csv(view, table) == view_csv(before, table)
    assert bool(view.domains) is (days != 1)  # something to compare, but on the empty day
    assert bool(view.reporters) is (days != 1)
