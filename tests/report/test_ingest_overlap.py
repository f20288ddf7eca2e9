"""``ingest_paths`` committing one group in a worker thread while it parses the next
(``overlap``, the default for PostgreSQL): the same outcomes, in the same order, and the same
guarantees as the one-thread loop: every report stored once, bad messages set aside, nothing
marked that is not committed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mtasts.report.ingest import IngestOutcome, ingest_paths, overlaps_by_default
from mtasts.report.sources import FAILED_FOLDER
from mtasts.store.errors import StoreUnavailable
from mtasts.store.memory import MemoryReportStore
from mtasts.store.store import ReportStore
from tests.report.conftest import pg_outage, pg_recover
from tests.report.test_ingest import fill_maildir

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def summary(outcomes: list[IngestOutcome]) -> list[tuple[str, int, int, str | None]]:
    """What a user sees of each outcome, by message (the Maildir names are random)."""
    return sorted((o.label.rsplit("/", 1)[0], o.stored, o.duplicates, o.error and o.error.code) for o in outcomes)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_overlapped_groups_store_what_one_thread_stores(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    if backend == "postgresql":
        url, _ = request.getfixturevalue("pg_database")
    fill_maildir(tmp_path / "one", 45, bad=3)
    fill_maildir(tmp_path / "two", 45, bad=3)
    with ReportStore(url) as store:
        assert overlaps_by_default(store) == (backend == "postgresql")
        overlapped = list(ingest_paths(store, [tmp_path / "one"], clock=lambda: NOW, group=7, overlap=True))
        assert store.count() == 45
    with ReportStore(f"sqlite:///{tmp_path / 'serial.sqlite3'}") as serial_store:
        serial = list(ingest_paths(serial_store, [tmp_path / "two"], clock=lambda: NOW, group=7, overlap=False))
    assert len(overlapped) == len(serial) == 48
    assert [o.stored for o in overlapped].count(1) == 45
    assert [o.error.code for o in overlapped if o.error] == ["mail.no_report"] * 3
    assert [(s, d, e) for _, s, d, e in summary(overlapped)] == [(s, d, e) for _, s, d, e in summary(serial)]
    assert len(list((tmp_path / "one" / "cur").iterdir())) == 45
    assert len(list((tmp_path / "one" / FAILED_FOLDER / "cur").iterdir())) == 3
    with ReportStore(url) as store:  # a second run reads nothing again
        assert list(ingest_paths(store, [tmp_path / "one"], clock=lambda: NOW, group=7, overlap=True)) == []


def test_outcomes_come_in_walk_order(tmp_path: Path) -> None:
    files = tmp_path / "files"
    fill_maildir(tmp_path / "md", 30)
    files.mkdir()
    for number, path in enumerate(sorted((tmp_path / "md" / "new").iterdir())):
        path.rename(files / f"m{number:03d}.eml")
    with MemoryReportStore() as store:
        outcomes = list(ingest_paths(store, [files], clock=lambda: NOW, group=4, overlap=True))
    assert [Path(o.label).name for o in outcomes] == [f"m{n:03d}.eml" for n in range(30)]


def test_an_outage_during_an_overlapped_commit_marks_nothing_uncommitted(
    tmp_path: Path, pg_database: tuple[str, str]
) -> None:
    url, name = pg_database
    fill_maildir(tmp_path / "md", 60)
    seen: list[IngestOutcome] = []
    with ReportStore(url) as store, pytest.raises(StoreUnavailable):  # noqa: PT012 (the outage comes mid-iteration)
        for outcome in ingest_paths(store, [tmp_path / "md"], clock=lambda: NOW, group=10, overlap=True):
            seen.append(outcome)
            if len(seen) == 10:
                pg_outage(name)
    pg_recover(name)
    marked = len(list((tmp_path / "md" / "cur").iterdir()))
    assert 10 <= marked < 60
    assert marked == len(seen)  # each commit's messages are marked, and reported, or neither
    with ReportStore(url) as store:
        assert store.count() == marked
        rest = list(ingest_paths(store, [tmp_path / "md"], clock=lambda: NOW, group=10))
        assert sum(o.stored for o in rest) == 60 - marked
